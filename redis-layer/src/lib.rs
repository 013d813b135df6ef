//! The Redis client layer of both services. [`Redis`] is one handle, cloned freely, over either
//! one `redis-server` (an auto-reconnecting multiplexed connection) or a Redis Cluster (the redis
//! crate's cluster client: one connection per node, commands routed by their keys' slot,
//! MOVED/ASK followed, the slot map refreshed after a failover). Which one is `[redis] mode` in the
//! config ([`Config`]); the code above it does not care. Every command runs within the
//! configured timeout and fails as an [`Error`] naming what was asked.
#![forbid(unsafe_code)]

mod config;
mod connection;
mod error;

pub use config::{Config, Mode};
pub use connection::Redis;
pub use error::Error;
