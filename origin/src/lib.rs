//! The flash-sale origin: reserves stock atomically in Redis and turns each reservation into an
//! order in PostgreSQL through a two-phase message, with a recovery poller and a reconcile command.
//! See docs/ARCHITECTURE.md for the map.
#![forbid(unsafe_code)]

pub mod activity;
pub mod api;
pub mod branches;
pub mod cli;
pub mod config;
pub mod crash;
pub mod database;
pub mod dtm;
pub mod enum_text;
pub mod error;
pub mod gid;
pub mod heal;
pub mod holds;
pub mod metrics;
pub mod payments;
pub mod purchase;
pub mod reconcile;
pub mod recovery;
pub mod reservations;
pub mod sales;
pub mod server;
