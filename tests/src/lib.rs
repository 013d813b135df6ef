//! Test support for the flash-sale stack: real Redis, PostgreSQL and service processes started on
//! free loopback ports in temp dirs, and stopped when dropped.
#![forbid(unsafe_code)]

pub mod bench;
pub mod browser;
pub mod crowd;
pub mod edge_process;
pub mod edge_router;
pub mod gateway;
pub mod kept;
pub mod load;
pub mod metrics;
pub mod net;
pub mod nginx_server;
pub mod oidc_provider;
pub mod origin_process;
pub mod payments;
pub mod postgres_server;
pub mod processes;
pub mod redis_cluster;
pub mod redis_process;
pub mod redis_server;
pub mod redis_under_test;
pub mod shop_login;
pub mod shopper;
pub mod stack;
pub mod wait;

/// The origin built with its crash points (`src/bin/origin_crashable.rs`), as a `&'static Path`.
/// A macro because Cargo tells only the integration tests where it built the binaries
/// (`CARGO_BIN_EXE_*`, read where the macro is used).
#[macro_export]
macro_rules! origin_binary {
    () => {
        ::std::path::Path::new(env!("CARGO_BIN_EXE_origin-crashable"))
    };
}

/// The edge as the tests run it (`src/bin/edge_under_test.rs`), as a `&'static Path`; see
/// [`origin_binary!`].
#[macro_export]
macro_rules! edge_binary {
    () => {
        ::std::path::Path::new(env!("CARGO_BIN_EXE_edge-under-test"))
    };
}
