//! Users this edge has seen buy, per sale: once the origin answered a user `reserved` (or
//! `duplicate`), that user's next buys are answered 409 from memory, with no Redis call and no
//! origin request (the origin would answer the same: one purchase per user and sale). Bounded:
//! past `MAX_ENTRIES` it starts over, which only sends a few duplicates to the origin again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Entries kept at most (a few tens of MB).
const MAX_ENTRIES: usize = 200_000;

/// (sale, uid) → the order id, when the origin said it.
type Entries = HashMap<(i64, String), Option<i64>>;

#[derive(Debug, Default, Clone)]
pub struct Bought {
    entries: Arc<Mutex<Entries>>,
}

impl Bought {
    /// The order id (if known) when `uid` has bought in `sale`.
    pub fn get(&self, sale: i64, uid: &str) -> Option<Option<i64>> {
        let entries = self.entries.lock().ok()?;
        entries.get(&(sale, uid.to_string())).copied()
    }

    pub fn insert(&self, sale: i64, uid: &str, order_id: Option<i64>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert((sale, uid.to_string()), order_id);
        }
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
}
