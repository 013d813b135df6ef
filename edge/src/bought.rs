//! Users this edge has seen buy, per sale: once the origin answered a user `reserved` (or
//! `duplicate`), that user's next buys are answered 409 from memory, with no Redis call and no
//! origin request (the origin would answer the same: one purchase per user and sale). Bounded
//! (moka): past `MAX_ENTRIES` the least used entries go first, which only sends a few duplicates
//! to the origin again.

use moka::sync::Cache;

/// Entries kept at most (a few tens of MB). moka evicts in the background of later calls, so
/// the count may pass it briefly.
const MAX_ENTRIES: u64 = 200_000;

#[derive(Debug, Clone)]
pub struct Bought {
    /// (sale, uid) → the order id, when the origin said it.
    entries: Cache<(i64, String), Option<i64>>,
}

impl Default for Bought {
    fn default() -> Self {
        Self {
            entries: Cache::new(MAX_ENTRIES),
        }
    }
}

impl Bought {
    /// The order id (if known) when `uid` has bought in `sale`.
    pub fn get(&self, sale: i64, uid: &str) -> Option<Option<i64>> {
        self.entries.get(&(sale, uid.to_string()))
    }

    pub fn insert(&self, sale: i64, uid: &str, order_id: Option<i64>) {
        self.entries.insert((sale, uid.to_string()), order_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_sale_and_user() {
        let bought = Bought::default();
        assert_eq!(bought.get(1, "a"), None);
        bought.insert(1, "a", Some(7));
        bought.insert(2, "b", None);
        assert_eq!(bought.get(1, "a"), Some(Some(7)));
        assert_eq!(bought.get(2, "b"), Some(None));
        assert_eq!(bought.get(2, "a"), None);
    }

    #[test]
    fn stays_within_its_bound() {
        let bought = Bought::default();
        let over = i64::try_from(MAX_ENTRIES).unwrap_or(i64::MAX) + 1_000;
        for sale in 0..over {
            bought.insert(sale, "u", None);
        }
        bought.entries.run_pending_tasks();
        assert!(
            bought.entries.entry_count() <= MAX_ENTRIES,
            "{} entries",
            bought.entries.entry_count()
        );
    }
}
