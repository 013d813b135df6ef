//! Plumbing shared by the edge and the origin, written once: the one HTTP listener both services
//! serve on (`listener`: slow-client timers, a bounded header buffer, a cap on open connections,
//! graceful shutdown), the text of `/metrics` (`metrics`), JSON request bodies and their refusals
//! (`body`), the config file and its checks (`config`), the strength check of secrets (`secret`),
//! and how a binary starts and stops (`process`: exit 64 on bad usage or config, tracing, the
//! shutdown signal).
#![forbid(unsafe_code)]

pub mod body;
pub mod config;
pub mod listener;
pub mod metrics;
pub mod process;
pub mod secret;
