//! Payment: a verified payment webhook marks a live hold paid in one guarded UPDATE, or is told
//! why not (owner, price, the hold), checked in the order the guard reads them.

use flash_wire::{OrderRefusal, OrderStatus};
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;

use super::{Hold, Holds, Order, Outcome, DB_NOW, ORDER_COLUMNS};
use crate::{
    error::{Error, Result},
    payments::PaymentEvent,
};

impl Holds {
    /// Marks the order paid by a verified payment webhook (`payments.rs`) if it is still a live
    /// hold of `event.uid`, and the amount and currency are its sale's. One guarded UPDATE (the
    /// hold live by the database's clock, the price matching), so payment and expiry never both
    /// win. The same payment again answers the same and changes nothing; a payment after expiry
    /// is refused `hold_expired` (the shop refunds it).
    pub async fn confirm_payment(&self, event: &PaymentEvent) -> Result<Outcome> {
        let client = self.db.client().await?;
        let (id, uid, payment_id) = (
            event.order_id,
            event.uid.as_str(),
            event.payment_id.as_str(),
        );
        let paid = client
            .query_opt(
                &format!(
                    "UPDATE orders SET status = 'paid', payment_id = $3, paid_at = now()
                     WHERE id = $1 AND uid = $2 AND status = 'pending' AND expires_at > now()
                       AND EXISTS (SELECT 1 FROM sales WHERE sales.id = orders.sale_id
                                   AND price_cents = $4 AND currency = $5)
                     RETURNING {ORDER_COLUMNS}"
                ),
                &[&id, &uid, &payment_id, &event.amount_cents, &event.currency],
            )
            .await;
        let outcome = match paid {
            Ok(Some(row)) => {
                let order = Order::from_row(&row);
                self.metrics.hold("paid");
                tracing::info!(order = id, %uid, payment_id, "order paid");
                return Ok(Outcome::Done(order));
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => match self.load(id).await? {
                Some(order) => Outcome::Refused {
                    code: OrderRefusal::PaymentIdUsed,
                    order,
                },
                None => Outcome::Unknown,
            },
            Err(e) => return Err(Error::postgres("pay order")(e)),
            Ok(None) => self.explain_payment(event).await?,
        };
        match &outcome {
            Outcome::Done(_) => tracing::info!(
                order = id,
                payment_id,
                "payment replayed: answered as before"
            ),
            Outcome::Refused { code, order } => tracing::warn!(
                order = id, %uid, payment_id, ?code, status = ?order.status,
                amount_cents = event.amount_cents, currency = %event.currency,
                "payment refused"
            ),
            _ => tracing::warn!(order = id, payment_id, "payment for an unknown order"),
        }
        Ok(outcome)
    }

    /// After the payment's guarded UPDATE changed nothing: why, checked in the order the
    /// UPDATE's guard reads (owner, price, then the hold); the same payment id on a paid order
    /// is the payment again.
    async fn explain_payment(&self, event: &PaymentEvent) -> Result<Outcome> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {ORDER_COLUMNS}, {DB_NOW},
                        (SELECT price_cents FROM sales WHERE sales.id = orders.sale_id) AS price_cents,
                        (SELECT currency FROM sales WHERE sales.id = orders.sale_id) AS currency
                     FROM orders WHERE id = $1"
                ),
                &[&event.order_id],
            )
            .await
            .map_err(Error::postgres("read order"))?;
        let Some(row) = row else {
            return Ok(Outcome::Unknown);
        };
        let order = Order::from_row(&row);
        let now: OffsetDateTime = row.get("db_now");
        let price: i64 = row.get("price_cents");
        let currency: String = row.get("currency");
        let code = if order.uid != event.uid {
            OrderRefusal::UidMismatch
        } else if price != event.amount_cents {
            OrderRefusal::AmountMismatch
        } else if currency != event.currency {
            OrderRefusal::CurrencyMismatch
        } else if order.status == OrderStatus::Paid
            && order.payment_id.as_deref() == Some(&event.payment_id)
        {
            return Ok(Outcome::Done(order));
        } else {
            order.refusal(now)
        };
        Ok(Outcome::Refused { code, order })
    }
}
