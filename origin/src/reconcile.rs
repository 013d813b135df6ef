//! `origin reconcile`: compares a sale's stock in Redis with its orders in PostgreSQL.
//! Conservation (invariant I2) reads `redis_remaining + live_orders + in_flight_units == stock`,
//! where an in-flight unit is a transaction taken in Redis whose live order does not exist yet,
//! plus the units of cancelled holds still on their way back (`returning`).
//! `--repair` rebuilds the Redis stock from PostgreSQL (`stock - live_orders`), only while nothing
//! is in flight, and only if Redis did not move between its read (first) and the write.

use serde::Serialize;

use crate::{
    database::{Database, OrderCounts},
    error::{Error, Result},
    holds::Holds,
    reservations::{Reservations, StockRepair},
};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub sale: i64,
    pub stock: i64,
    /// `None` when Redis has no stock key for the sale.
    pub redis_remaining: Option<i64>,
    pub live_orders: i64,
    pub orders: OrderCounts,
    /// Transactions not completed.
    pub in_flight: i64,
    /// Of those, the ones holding a unit with no live order yet.
    pub in_flight_units: i64,
    /// Units of cancelled holds on their way back to Redis.
    pub returning: i64,
    /// `stock - redis_remaining - live_orders - in_flight_units - returning`; 0 when the books
    /// balance.
    pub drift: i64,
}

/// Reads both sides and computes the drift.
pub async fn report(
    redis: &Reservations,
    db: &Database,
    holds: &Holds,
    sale: i64,
) -> Result<Report> {
    let stored = db.sale(sale).await?.ok_or(Error::UnknownSale(sale))?;
    let in_flight = redis.in_flight(sale).await?;
    let remaining = redis.remaining(sale).await?;
    let orders = db.order_counts(sale).await?;
    let ordered = db.live_orders_among(&in_flight).await?;
    let returning = holds.returning(sale).await?;
    let in_flight_units = i64::try_from(in_flight.len()).unwrap_or(i64::MAX) - ordered;
    let stock = i64::from(stored.total);
    Ok(Report {
        sale,
        stock,
        redis_remaining: remaining,
        live_orders: orders.live(),
        orders,
        in_flight: i64::try_from(in_flight.len()).unwrap_or(i64::MAX),
        in_flight_units,
        returning,
        drift: stock - remaining.unwrap_or(0) - orders.live() - in_flight_units - returning,
    })
}

/// What `--repair` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Redis stock set to `to` (it was `from`).
    Repaired { from: Option<i64>, to: i64 },
    /// Refused: transactions in flight.
    InFlight(u64),
    /// Refused: units of cancelled holds on their way back to Redis.
    Returning(i64),
    /// Refused: the Redis stock moved while the repair read PostgreSQL (a purchase or a return
    /// completed meanwhile).
    Moved,
}

/// Sets the Redis stock to `stock - live orders`, only if nothing is in flight (no transaction,
/// no return) and nothing moved in Redis meanwhile. Redis is read FIRST: PostgreSQL's count is
/// then at least as recent as the snapshot, and `repair_stock.lua` refuses if anything moved
/// after the snapshot (see the script's header for why that suffices).
pub async fn repair(redis: &Reservations, db: &Database, sale: i64) -> Result<Repair> {
    let stored = db.sale(sale).await?.ok_or(Error::UnknownSale(sale))?;
    let seen = redis.stock_snapshot(sale).await?;
    if seen.in_flight > 0 {
        return Ok(Repair::InFlight(seen.in_flight));
    }
    let held = db.units_held(sale).await?;
    if held.returning > 0 {
        return Ok(Repair::Returning(held.returning));
    }
    let to = (i64::from(stored.total) - held.live).max(0);
    Ok(match redis.repair_stock(sale, to, &seen).await? {
        StockRepair::Repaired { from } => Repair::Repaired { from, to },
        StockRepair::InFlight(n) => Repair::InFlight(n),
        StockRepair::Moved => Repair::Moved,
    })
}

impl Report {
    /// The table printed for people.
    pub fn human(&self) -> String {
        let remaining = self
            .redis_remaining
            .map_or_else(|| "missing".to_string(), |n| n.to_string());
        format!(
            "sale            {}\n\
             stock           {}\n\
             redis remaining {remaining}\n\
             live orders     {} (pending {}, paid {})\n\
             cancelled       {}\n\
             rejected        {}\n\
             in flight       {} ({} holding a unit without an order)\n\
             returning       {}\n\
             drift           {}{}",
            self.sale,
            self.stock,
            self.live_orders,
            self.orders.pending,
            self.orders.paid,
            self.orders.cancelled,
            self.orders.rejected,
            self.in_flight,
            self.in_flight_units,
            self.returning,
            self.drift,
            if self.drift == 0 {
                " (books balance)"
            } else {
                " (MISMATCH)"
            },
        )
    }
}
