//! The origin under a crowd, duplicates and bad input, against real Redis and PostgreSQL, one
//! module per concern: invariants I1 (no oversell), I2 (conservation), I3 (one per user), I4
//! (nothing lost, nothing doubled) and I5 (no false promise) under crowds and duplicates
//! (`crowd`), the Redis round trips a reservation costs (`round_trips`), bad input
//! (`bad_input`), reconcile and its repair (`repair`), group commit of branches (`group_commit`),
//! a sale whose Redis stock is lost (`stock_loss`). One test binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod bad_input;
mod crowd;
mod group_commit;
mod repair;
mod round_trips;
mod stock_loss;

use flash_tests::origin_binary;
use std::{collections::HashSet, path::Path, sync::Arc};

use flash_tests::{
    metrics, origin_process::OriginOptions, redis_server::BOOKKEEPING_COMMANDS, stack::Stack, wait,
};
use origin::{
    branches::{self, Branch},
    database::Database,
    reconcile,
    reservations::{Reservations, StockRepair},
};
use redis::AsyncCommands;
use serde_json::{json, Value};

async fn stack(options: OriginOptions) -> Stack {
    Stack::start(origin_binary!(), options).await.unwrap()
}
