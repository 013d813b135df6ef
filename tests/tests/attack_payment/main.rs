//! The review's attacks on payment (finding 4: an order "paid" with any string; `browser`,
//! `webhooks`) and on order ids (finding 8: another user's order told apart from an unknown one;
//! `order_ids`), sent again against real servers: nginx -> edge -> origin, Redis and PostgreSQL. The
//! browser cannot pay; only the payment service's signed webhook does, once; every forged, stale,
//! replayed or mismatched one is refused with the books untouched; another user's order and no order
//! answer the same. One test binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod browser;
mod order_ids;
mod webhooks;

use flash_tests::{front, front::Front, origin_process::PAYMENT_WEBHOOK_SECRET, payments};
use serde_json::{json, Value};

/// nginx → edge → origin → Redis and PostgreSQL, and the calls these tests make.
struct World {
    front: Front,
}

impl World {
    async fn start() -> Self {
        let static_root = front::static_root().unwrap();
        let front = front!().start(&static_root).await.unwrap();
        Self { front }
    }

    /// A sale at 129.00 EUR with `stock` units and long holds.
    async fn sale(&self, stock: i64) -> i64 {
        let (status, body) = self
            .front
            .stack
            .post(
                "/v1/sales",
                &json!({"name": "Paid sneakers", "stock": stock, "hold_seconds": 600,
                        "price_cents": 12900, "currency": "EUR"}),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    async fn reserve(&self, sale: i64, uid: &str) -> i64 {
        let (status, body) = self.front.stack.reserve(sale, uid).await.unwrap();
        assert_eq!(status, 200, "{body}");
        body["order_id"].as_i64().unwrap()
    }

    /// The order's status, payment id and paid_at, as PostgreSQL has them.
    async fn row(&self, order: i64) -> (String, Option<String>, Option<time::OffsetDateTime>) {
        let db = self.front.stack.postgres.client().await.unwrap();
        let row = db
            .query_one(
                "SELECT status, payment_id, paid_at FROM orders WHERE id = $1",
                &[&order],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }

    /// The public webhook URL, through nginx and the edge.
    fn webhook_url(&self) -> String {
        format!("{}/api/payments/webhook", self.front.nginx.url())
    }
}

fn jwt(uid: &str) -> String {
    flash_tests::shopper::jwt(uid).unwrap()
}
