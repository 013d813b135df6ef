//! The heal's scripts (`heal_begin.lua`, `heal_keys.lua`, `heal_finish.lua`): the heal lock taken
//! after a loss, the barriers and records written back, the rebuilt stock set (see `heal.rs`).

use std::{sync::LazyLock, time::Duration};

use redis::{Script, Value};

use super::{
    keys::SaleKeys,
    millis,
    replies::{int, parse_heal_finish, parse_heal_start, text},
    HealFinish, HealStart, HealedOrder, Loss, Reservations,
};
use crate::error::{Error, Result};

pub(super) static HEAL_BEGIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/heal_begin.lua")));
pub(super) static HEAL_KEYS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/heal_keys.lua")));
pub(super) static HEAL_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/heal_finish.lua")));

impl Reservations {
    /// Takes the heal lock of `sale` for `lock` after `loss` was noticed.
    pub async fn heal_begin(
        &self,
        sale: i64,
        token: &str,
        lock: Duration,
        loss: Loss,
    ) -> Result<HealStart> {
        let keys = SaleKeys::new(sale);
        let mut inv = HEAL_BEGIN.prepare_invoke();
        inv.key(keys.healing())
            .key(keys.fence())
            .key(keys.stock())
            .key(keys.restocks())
            .arg(token)
            .arg(millis(lock))
            .arg(match loss {
                Loss::MissingStock => "missing".to_string(),
                Loss::RepeatedFence { epoch } | Loss::Overcount { epoch } => epoch.to_string(),
                Loss::Drift { .. } => "drift".to_string(),
            });
        let reply: Vec<Value> = self.run("heal_begin", &inv).await?;
        parse_heal_start(&reply).ok_or(Error::Protocol("heal_begin.lua reply"))
    }

    /// Writes back the missing barriers and records of `orders` and the return barriers of
    /// `returns`, expiring at `expire_at_ms`; `None` when the lock is lost. Else the barriers
    /// and return barriers written now.
    pub async fn heal_keys(
        &self,
        sale: i64,
        token: &str,
        lock: Duration,
        expire_at_ms: i64,
        orders: &[HealedOrder],
        returns: &[i64],
    ) -> Result<Option<(i64, i64)>> {
        let keys = SaleKeys::new(sale);
        let mut inv = HEAL_KEYS.prepare_invoke();
        inv.key(keys.healing())
            .arg(token)
            .arg(keys.prefix())
            .arg(millis(lock))
            .arg(expire_at_ms)
            .arg(orders.len());
        for order in orders {
            inv.arg(&order.gid)
                .arg(if order.rejected {
                    "rejected"
                } else {
                    "pending"
                })
                .arg(order.order_id);
        }
        for order_id in returns {
            inv.arg(order_id);
        }
        let reply: Vec<Value> = self.run("heal_keys", &inv).await?;
        match (
            text(reply.first()).as_deref(),
            int(reply.get(1)),
            int(reply.get(2)),
        ) {
            (Some("WRITTEN"), Some(barriers), Some(returns)) => Ok(Some((barriers, returns))),
            (Some("LOST"), _, _) => Ok(None),
            _ => Err(Error::Protocol("heal_keys.lua reply")),
        }
    }

    /// Sets the rebuilt `stock` and drops the lock, if no unit came back since `restocks`.
    pub async fn heal_finish(
        &self,
        sale: i64,
        token: &str,
        stock: i64,
        restocks: i64,
    ) -> Result<HealFinish> {
        let keys = SaleKeys::new(sale);
        let mut inv = HEAL_FINISH.prepare_invoke();
        inv.key(keys.healing())
            .key(keys.stock())
            .key(keys.fence())
            .key(keys.restocks())
            .arg(token)
            .arg(stock)
            .arg(restocks)
            .arg(keys.events());
        let reply: Vec<Value> = self.run("heal_finish", &inv).await?;
        parse_heal_finish(&reply).ok_or(Error::Protocol("heal_finish.lua reply"))
    }
}
