//! Plumbing shared by the edge and the origin: the one HTTP listener both services serve on
//! (`listener`: slow-client timers, a bounded header buffer, a cap on open connections, graceful
//! shutdown) and the strength check of their secrets (`secret`).
#![forbid(unsafe_code)]

pub mod listener;
pub mod secret;
