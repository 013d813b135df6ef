//! The key layout of one sale: every key under the `{s:<sale>}` hash tag, so that a sale's
//! script runs on one cluster node.

use crate::gid::Gid;

/// Keys of one sale; the `{s:<sale>}` hash tag keeps them in one cluster slot.
#[derive(Debug, Clone)]
pub struct SaleKeys {
    prefix: String,
}

impl SaleKeys {
    pub fn new(sale: i64) -> Self {
        Self {
            prefix: format!("{{s:{sale}}}"),
        }
    }
    /// `{s:<sale>}:`, the start of every key of the sale.
    pub fn prefix(&self) -> String {
        format!("{}:", self.prefix)
    }
    pub fn stock(&self) -> String {
        format!("{}:stock", self.prefix)
    }
    pub fn barrier(&self, gid: &Gid) -> String {
        format!("{}:b:{gid}", self.prefix)
    }
    /// The marker of a dtm message whose back-check found no reservation (`dtm_query.lua`).
    pub fn marker(&self, message: &str) -> String {
        format!("{}:m:{message}", self.prefix)
    }
    pub fn tx_prefix(&self) -> String {
        format!("{}:tx:", self.prefix)
    }
    pub fn tx(&self, gid: &Gid) -> String {
        format!("{}:tx:{gid}", self.prefix)
    }
    pub fn due(&self) -> String {
        format!("{}:due", self.prefix)
    }
    pub fn returned(&self, order_id: i64) -> String {
        format!("{}:r:{order_id}", self.prefix)
    }
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
    /// Counts every raise of the stock (a returned unit or hold) and every repair or heal.
    pub fn restocks(&self) -> String {
        format!("{}:restocks", self.prefix)
    }
    /// The heal lock: while it exists no unit is handed out.
    pub fn healing(&self) -> String {
        format!("{}:healing", self.prefix)
    }
    /// Counts the units handed out, in epochs of [`FENCE_EPOCH`](super::FENCE_EPOCH) moved on by every heal.
    pub fn fence(&self) -> String {
        format!("{}:fence", self.prefix)
    }
}
