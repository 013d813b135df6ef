//! The flash-sale edge gateway: identity, captcha pass tokens, per-IP / per-UID / global limits,
//! the sold-out short circuit, sale pages, and forwarding of the survivors to the origins.
//! See docs/ARCHITECTURE.md for the map.
#![forbid(unsafe_code)]

pub mod bought;
pub mod captcha;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod forward;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod pass;
pub mod payments;
pub mod reload;
pub mod routes;
pub mod sales;
pub mod server;
pub mod soldout;
pub mod state;
