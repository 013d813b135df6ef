//! The sold-out flags: one per sale, in memory, so that a buy for a sold-out sale is answered
//! 410 with no Redis command and no origin request. Set by the origin's `sold_out` answers and
//! by Redis pub/sub (`events`); cleared by a `restocked` event, and all at once when the event
//! stream reconnects (a missed restock must not keep a sale closed: the origin decides again).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

#[derive(Debug, Default, Clone)]
pub struct SoldOut {
    sales: Arc<RwLock<HashSet<i64>>>,
}

impl SoldOut {
    pub fn is_sold_out(&self, sale: i64) -> bool {
        self.sales.read().is_ok_and(|s| s.contains(&sale))
    }

    /// Marks `sale` sold out; true when it was not already.
    pub fn mark(&self, sale: i64) -> bool {
        self.sales.write().is_ok_and(|mut s| s.insert(sale))
    }

    /// Re-opens `sale`; true when it was marked.
    pub fn clear(&self, sale: i64) -> bool {
        self.sales.write().is_ok_and(|mut s| s.remove(&sale))
    }

    pub fn clear_all(&self) {
        if let Ok(mut s) = self.sales.write() {
            s.clear();
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
}
