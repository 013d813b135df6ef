//! The flash-sale origin: reserves stock atomically in Redis and turns each reservation into an
//! order in PostgreSQL through a two-phase message, with a recovery poller and a reconcile command.
#![forbid(unsafe_code)]

pub mod cli;
