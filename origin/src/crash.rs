//! Crash points for the crash tests: in a debug build with the `crash-points` feature, the process
//! kills itself with SIGKILL when it reaches the point named by `ORIGIN_CRASH_POINT`
//! (`after_prepare`, `after_reserve`, `in_db_transaction`, `after_commit`, `after_cancel` or `after_restock`),
//! optionally on its Nth visit (`after_commit:3`). Everywhere else `point` is an empty inline function: the feature alone
//! is not enough, because cargo unifies features across a workspace (the tests crate turns it on,
//! so `cargo build --release` at the root would build an origin with it); a release build
//! (`debug_assertions` off) never has armed crash points, whatever its features.

/// Where a crash matters in a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// With a dtm coordinator: the message prepared at dtm, no stock taken yet.
    AfterPrepare,
    /// Stock taken in Redis, branch not started.
    AfterReserve,
    /// Inside the database transaction, before its commit.
    InDbTransaction,
    /// Branch committed, transaction not completed in Redis.
    AfterCommit,
    /// A hold cancelled in the database, its unit not yet back in Redis.
    AfterCancel,
    /// A cancelled hold's unit back in Redis (`restock.lua` ran), its `returns` row not yet
    /// closed: the return is run again and the Redis barrier must keep it from counting twice.
    AfterRestock,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Self::AfterPrepare => "after_prepare",
            Self::AfterReserve => "after_reserve",
            Self::InDbTransaction => "in_db_transaction",
            Self::AfterCommit => "after_commit",
            Self::AfterCancel => "after_cancel",
            Self::AfterRestock => "after_restock",
        }
    }
}

#[cfg(not(all(feature = "crash-points", debug_assertions)))]
#[inline(always)]
pub fn point(_: Point) {}

#[cfg(all(feature = "crash-points", debug_assertions))]
pub fn point(at: Point) {
    armed::visit(at);
}

#[cfg(all(feature = "crash-points", debug_assertions))]
mod armed {
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    };

    use super::Point;

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static VISITS: AtomicU64 = AtomicU64::new(0);

    fn target() -> &'static Option<(String, u64)> {
        TARGET.get_or_init(|| {
            let spec = std::env::var("ORIGIN_CRASH_POINT").ok()?;
            let (name, nth) = match spec.split_once(':') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            tracing::warn!(point = %name, nth, "crash point armed");
            Some((name, nth))
        })
    }

    pub fn visit(at: Point) {
        let Some((name, nth)) = target() else { return };
        if name == at.name() && VISITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            tracing::warn!(point = at.name(), "crash point reached: SIGKILL");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
}
