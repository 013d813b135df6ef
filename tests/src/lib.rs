//! Test support for the flash-sale stack: real Redis, PostgreSQL and service processes started on
//! free loopback ports in temp dirs, and stopped when dropped.
#![forbid(unsafe_code)]

pub mod bench;
pub mod browser;
pub mod crowd;
pub mod edge_process;
pub mod load;
pub mod metrics;
pub mod net;
pub mod nginx_server;
pub mod origin_process;
pub mod payments;
pub mod postgres_server;
pub mod redis_cluster;
pub mod redis_process;
pub mod redis_server;
pub mod redis_under_test;
pub mod shopper;
pub mod stack;
pub mod wait;
