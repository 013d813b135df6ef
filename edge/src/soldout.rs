//! The sold-out flags: one per sale, in memory, so that a buy for a sold-out sale is answered
//! 410 with no Redis command and no origin request. Set by the origin's `sold_out` answers and
//! by Redis pub/sub (`events`); cleared by a `restocked` event, and all at once when the event
//! stream reconnects (a missed restock must not keep a sale closed: the origin decides again).
//! An origin answer sets the flag only if the sale has not re-opened since its request left
//! ([`Ticket`]): a late 410 must not close a sale that has stock again.
//!
//! An event can also be missed with the stream up: on a Redis Cluster a node that dies right after
//! a script published may never have passed the message on. So the sale facts the edge fetches
//! anyway (for the status polls, `sales.rs`) also re-open a sale: units counted in Redis after the
//! flag was set mean a `restocked` event was missed ([`SoldOut::reopen_if_marked_before`]).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use tokio::time::Instant;

#[derive(Debug, Default, Clone)]
pub struct SoldOut {
    inner: Arc<RwLock<Flags>>,
}

#[derive(Debug, Default)]
struct Flags {
    /// Sold-out sales, with when each was marked.
    sold_out: HashMap<i64, Instant>,
    /// Re-openings seen per sale (`restocked` events).
    reopened: HashMap<i64, u64>,
    /// Re-openings of every sale at once (the event stream reconnected).
    all_reopened: u64,
}

/// What a sale's flag had seen when a request left for the origin: an answer that says sold out
/// may set the flag only if the sale has not re-opened since (that answer is older than the
/// `restocked` event, and would close a sale that has stock again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    reopened: u64,
    all_reopened: u64,
}

impl Flags {
    /// Marks `sale` now; true when it was not marked.
    fn insert(&mut self, sale: i64) -> bool {
        match self.sold_out.entry(sale) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Instant::now());
                true
            }
        }
    }

    fn ticket(&self, sale: i64) -> Ticket {
        Ticket {
            reopened: self.reopened.get(&sale).copied().unwrap_or(0),
            all_reopened: self.all_reopened,
        }
    }
}

impl SoldOut {
    pub fn is_sold_out(&self, sale: i64) -> bool {
        self.inner
            .read()
            .is_ok_and(|f| f.sold_out.contains_key(&sale))
    }

    /// Marks `sale` sold out (an event, in order with the re-openings); true when it was not
    /// already.
    pub fn mark(&self, sale: i64) -> bool {
        self.inner.write().is_ok_and(|mut f| f.insert(sale))
    }

    /// Taken before a request leaves for the origin, for [`SoldOut::mark_since`].
    pub fn ticket(&self, sale: i64) -> Ticket {
        self.inner.read().map(|f| f.ticket(sale)).unwrap_or(Ticket {
            reopened: u64::MAX,
            all_reopened: u64::MAX,
        })
    }

    /// Marks `sale` sold out from an origin's answer to a request that left with `ticket`,
    /// unless the sale re-opened since; true when it marked it now.
    pub fn mark_since(&self, sale: i64, ticket: Ticket) -> bool {
        self.inner
            .write()
            .is_ok_and(|mut f| f.ticket(sale) == ticket && f.insert(sale))
    }

    /// Re-opens `sale`; true when it was marked.
    pub fn clear(&self, sale: i64) -> bool {
        self.inner.write().is_ok_and(|mut f| {
            *f.reopened.entry(sale).or_default() += 1;
            f.sold_out.remove(&sale).is_some()
        })
    }

    /// Re-opens `sale` if it was marked before `asked` (when a read of Redis that found units
    /// left was sent): those units came back after the mark, by a `restocked` event this edge
    /// did not hear. True when it re-opened the sale now.
    pub fn reopen_if_marked_before(&self, sale: i64, asked: Instant) -> bool {
        let marked = self
            .inner
            .read()
            .ok()
            .and_then(|f| f.sold_out.get(&sale).copied());
        marked.is_some_and(|at| at < asked) && self.clear(sale)
    }

    pub fn clear_all(&self) {
        if let Ok(mut f) = self.inner.write() {
            f.all_reopened += 1;
            f.sold_out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_and_clears_per_sale() {
        let flags = SoldOut::default();
        assert!(flags.mark(1));
        assert!(!flags.mark(1));
        assert!(flags.is_sold_out(1) && !flags.is_sold_out(2));
        assert!(flags.clear(1) && !flags.is_sold_out(1));
        flags.mark(3);
        flags.clear_all();
        assert!(!flags.is_sold_out(3));
    }

    #[tokio::test(start_paused = true)]
    async fn units_read_after_the_mark_reopen_the_sale_and_older_reads_do_not() {
        let flags = SoldOut::default();
        let before = Instant::now();
        tokio::time::advance(std::time::Duration::from_millis(10)).await;
        flags.mark(7);
        // A read sent before the mark says nothing of what came after it.
        assert!(!flags.reopen_if_marked_before(7, before));
        assert!(flags.is_sold_out(7));
        tokio::time::advance(std::time::Duration::from_millis(10)).await;
        assert!(flags.reopen_if_marked_before(7, Instant::now()));
        assert!(!flags.is_sold_out(7));
        // Nothing marked: nothing to re-open.
        assert!(!flags.reopen_if_marked_before(8, Instant::now()));
    }

    #[test]
    fn a_sold_out_answer_older_than_a_reopening_does_not_close_the_sale() {
        let flags = SoldOut::default();
        // A request leaves; the sale sells out and re-opens (a returned unit) before its 410
        // comes back: that 410 must not close the sale again.
        let ticket = flags.ticket(7);
        flags.mark(7);
        assert!(flags.clear(7));
        assert!(!flags.mark_since(7, ticket));
        assert!(!flags.is_sold_out(7));
        // A reconnection re-opens everything: same.
        let ticket = flags.ticket(7);
        flags.clear_all();
        assert!(!flags.mark_since(7, ticket));
        // An answer to a request sent after the re-opening closes it; another sale's re-opening
        // does not matter.
        let ticket = flags.ticket(7);
        flags.clear(8);
        assert!(flags.mark_since(7, ticket));
        assert!(flags.is_sold_out(7));
    }
}
