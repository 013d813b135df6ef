//! Test support for the flash-sale stack: real Redis, PostgreSQL and service processes started on
//! free loopback ports in temp dirs, and stopped when dropped.
#![forbid(unsafe_code)]

pub mod bench;
pub mod browser;
pub mod crowd;
pub mod edge_process;
pub mod edge_router;
pub mod front;
pub mod gateway;
pub mod jwks_server;
pub mod load;
pub mod metrics;
pub mod oidc_provider;
pub mod origin_process;
pub mod origin_router;
pub mod payments;
pub mod redis_under_test;
pub mod sale_page;
pub mod shop_login;
pub mod shopper;
pub mod stack;

// The server types live in the flash-servers crate (shared with the launcher); here under their
// old paths.
pub use flash_servers::{
    dtm_server, kept, net, nginx_server, postgres_server, processes, redis_cluster, redis_process,
    redis_server, wait,
};

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
