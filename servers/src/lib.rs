//! The real servers of the flash-sale stack as Rust types: Redis, a Redis Cluster, PostgreSQL,
//! nginx and dtm (its server and its flash-sale bench server), either started per test on free
//! loopback ports in temp dirs and stopped when dropped, or kept running in a state folder by the
//! launcher (`src/bin/stack/`, behind `./deploy/up` and `./deploy/down`). Lean on purpose: the
//! launcher is built in release by `./deploy/up`.
#![forbid(unsafe_code)]

pub mod dtm_server;
pub mod kept;
pub mod net;
pub mod nginx_server;
pub mod postgres_server;
pub mod processes;
pub mod redis_cluster;
pub mod redis_process;
pub mod redis_server;
pub mod wait;
