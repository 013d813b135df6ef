//! The edge in front of a real origin, Redis and PostgreSQL, one module per concern: identity and
//! pass-token attacks and the bad-input table (`identity`, `bad_input`: the edge's router driven
//! in memory), the limits across edges and the dry runs (`limits`), what the edge knows of a
//! sale — the sold-out short circuit, one lookup per crowd (`sale_facts`), config reload on
//! SIGHUP (`reload`), an origin down, dead or stalled (`origins`), the captcha levels
//! (`captcha`). One test binary: the world of these tests is `flash_tests::gateway`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod bad_input;
mod captcha;
mod identity;
mod limits;
mod origins;
mod reload;
mod sale_facts;

use flash_tests::{
    edge_binary, edge_process::EdgeOptions, edge_router::EdgeRouter, gateway::World, origin_binary,
    origin_process::OriginOptions, stack::Stack,
};
use serde_json::Value;

async fn start(edges: usize, options: EdgeOptions) -> World {
    start_with(edges, options, OriginOptions::default()).await
}

async fn start_with(edges: usize, options: EdgeOptions, origin: OriginOptions) -> World {
    World::start((origin_binary!(), edge_binary!()), edges, &options, origin)
        .await
        .unwrap()
}

/// The stack with the edge's router in memory in front of its origin.
async fn in_memory() -> (Stack, EdgeRouter) {
    let stack = Stack::start(origin_binary!(), OriginOptions::default())
        .await
        .unwrap();
    let edge = EdgeRouter::start(&stack.redis.url(), &stack.origin.url())
        .await
        .unwrap();
    (stack, edge)
}

/// A user JWT as the shop's login would issue it.
fn jwt(uid: &str) -> String {
    flash_tests::shopper::jwt(uid).unwrap()
}

/// Solves a captcha on `edge` for `token`'s user: the pass token.
async fn pass(world: &World, edge: usize, token: &str, sale: i64) -> String {
    world.pass(edge, token, sale).await.unwrap()
}

async fn post(world: &World, url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    world.post(url, token, body).await.unwrap()
}

async fn buy(
    world: &World,
    edge: usize,
    token: Option<&str>,
    sale: i64,
    pass: &str,
) -> (u16, Value) {
    world.buy(edge, token, sale, pass).await.unwrap()
}
