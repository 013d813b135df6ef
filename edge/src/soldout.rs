//! The sold-out flags: one per sale, in memory, so that a buy for a sold-out sale is answered
//! 410 with no Redis command and no origin request. Set by the origin's `sold_out` answers and
//! by Redis pub/sub (`events`); cleared by a `restocked` event, and all at once when the event
//! stream reconnects (a missed restock must not keep a sale closed: the origin decides again).
//! An origin answer sets the flag only if the sale has not re-opened since its request left
//! ([`Ticket`]): a late 410 must not close a sale that has stock again.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

#[derive(Debug, Default, Clone)]
pub struct SoldOut {
    inner: Arc<RwLock<Flags>>,
}

#[derive(Debug, Default)]
struct Flags {
    sold_out: HashSet<i64>,
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
    fn ticket(&self, sale: i64) -> Ticket {
        Ticket {
            reopened: self.reopened.get(&sale).copied().unwrap_or(0),
            all_reopened: self.all_reopened,
        }
    }
}

impl SoldOut {
    pub fn is_sold_out(&self, sale: i64) -> bool {
        self.inner.read().is_ok_and(|f| f.sold_out.contains(&sale))
    }

    /// Marks `sale` sold out (an event, in order with the re-openings); true when it was not
    /// already.
    pub fn mark(&self, sale: i64) -> bool {
        self.inner
            .write()
            .is_ok_and(|mut f| f.sold_out.insert(sale))
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
            .is_ok_and(|mut f| f.ticket(sale) == ticket && f.sold_out.insert(sale))
    }

    /// Re-opens `sale`; true when it was marked.
    pub fn clear(&self, sale: i64) -> bool {
        self.inner.write().is_ok_and(|mut f| {
            *f.reopened.entry(sale).or_default() += 1;
            f.sold_out.remove(&sale)
        })
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
