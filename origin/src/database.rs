//! PostgreSQL, the final authority: the connection pool, the schema migrations (`migrations/`),
//! sales and order counts. Phase 2 of the two-phase message (the branch) is in `branches`.

use std::{future::Future, str::FromStr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use time::OffsetDateTime;
use tokio_postgres::{NoTls, Row};

use crate::{
    error::{Error, Result},
    reservations::HealedOrder,
    sales::{NewSale, Sale},
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Key of the advisory lock that serialises migrations between origins starting together.
const MIGRATION_LOCK: i64 = 0x666c_6173_6801;

/// Orders of a sale by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrderCounts {
    pub pending: i64,
    pub paid: i64,
    pub cancelled: i64,
    pub rejected: i64,
}

impl OrderCounts {
    /// Orders that hold a unit.
    pub fn live(&self) -> i64 {
        self.pending + self.paid
    }
}

/// Where the units of a sale are, as PostgreSQL sees them at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitsHeld {
    /// Pending and paid orders.
    pub live: i64,
    /// Cancelled holds whose unit is not back in Redis yet (open `returns` rows).
    pub returning: i64,
}

/// What a heal rebuilds a sale's Redis side from, read in one snapshot of PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealSource {
    pub total: i64,
    /// Every order of the sale, whatever its status.
    pub orders: Vec<HealedOrder>,
    /// Orders holding a unit (pending, paid).
    pub live: i64,
    /// Every cancelled order whose unit has gone or is going back (its `returns` row).
    pub returns: Vec<i64>,
}

#[derive(Clone)]
pub struct Database {
    pool: Pool,
}

impl Database {
    /// A pool of `size` connections to `url`, each with a server-side statement timeout.
    pub fn connect(url: &str, size: usize, timeout: Duration) -> Result<Self> {
        let mut pg = tokio_postgres::Config::from_str(url).map_err(Error::postgres("url"))?;
        pg.connect_timeout(timeout);
        pg.options(format!("-c statement_timeout={}", timeout.as_millis()));
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            })
            .build()
            .map_err(|_| Error::Protocol("postgres pool configuration"))?;
        Ok(Self { pool })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Applies the pending migrations, one origin at a time.
    pub async fn migrate(url: &str) -> Result<()> {
        let (mut client, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(Error::postgres("connect"))?;
        let task = tokio::spawn(conn);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(Error::postgres("migration lock"))?;
        let report = embedded::migrations::runner().run_async(&mut client).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(Error::postgres("migration unlock"))?;
        drop(client);
        task.abort();
        match report {
            Ok(report) => {
                for m in report.applied_migrations() {
                    tracing::info!(version = m.version(), name = m.name(), "migration applied");
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "migration failed");
                Err(Error::Protocol("migration failure (see log)"))
            }
        }
    }

    /// Inserts a sale and runs `open` (which puts its stock into Redis) before the commit: when
    /// `open` fails the sale is rolled back, so PostgreSQL never keeps a sale whose stock was
    /// never opened. (A commit failing after `open` leaves a stock key under an id no sale will
    /// ever have: sequences do not hand an id out twice, and a reservation for it is 404.)
    pub async fn create_sale<F, Fut>(&self, new: &NewSale, open: F) -> Result<Sale>
    where
        F: FnOnce(Sale) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres("begin create sale"))?;
        let row = tx
            .query_one(
                "INSERT INTO sales (name, total, starts_at, ends_at, hold_seconds, price_cents, currency)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING id, name, total, sold, starts_at, ends_at, hold_seconds, price_cents, currency",
                &[
                    &new.name,
                    &new.stock,
                    &new.starts_at,
                    &new.ends_at,
                    &new.hold_seconds,
                    &new.price_cents,
                    &new.currency,
                ],
            )
            .await
            .map_err(Error::postgres("create sale"))?;
        let sale = sale_from_row(&row);
        open(sale.clone()).await?;
        tx.commit()
            .await
            .map_err(Error::postgres("commit create sale"))?;
        Ok(sale)
    }

    pub async fn sale(&self, id: i64) -> Result<Option<Sale>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, name, total, sold, starts_at, ends_at, hold_seconds, price_cents, currency
                 FROM sales WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(Error::postgres("read sale"))?;
        Ok(row.as_ref().map(sale_from_row))
    }

    /// Sales that may still have transactions in flight: not ended more than a day ago.
    pub async fn recent_sales(&self) -> Result<Vec<Sale>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, total, sold, starts_at, ends_at, hold_seconds, price_cents, currency FROM sales
                 WHERE ends_at IS NULL OR ends_at > now() - interval '1 day'",
                &[],
            )
            .await
            .map_err(Error::postgres("list sales"))?;
        Ok(rows.iter().map(sale_from_row).collect())
    }

    pub async fn order_counts(&self, sale: i64) -> Result<OrderCounts> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT status, count(*) FROM orders WHERE sale_id = $1 GROUP BY status",
                &[&sale],
            )
            .await
            .map_err(Error::postgres("count orders"))?;
        let mut counts = OrderCounts::default();
        for row in rows {
            let n: i64 = row.get(1);
            match row.get::<_, &str>(0) {
                "pending" => counts.pending = n,
                "paid" => counts.paid = n,
                "cancelled" => counts.cancelled = n,
                _ => counts.rejected = n,
            }
        }
        Ok(counts)
    }

    /// Live orders of a sale and units of its cancelled holds not yet back in Redis, read in ONE
    /// statement (one snapshot: a cancel cannot fall between the two counts).
    pub async fn units_held(&self, sale: i64) -> Result<UnitsHeld> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT
                   (SELECT count(*) FROM orders
                     WHERE sale_id = $1 AND status IN ('pending', 'paid')),
                   (SELECT count(*) FROM returns WHERE sale_id = $1 AND done_at IS NULL)",
                &[&sale],
            )
            .await
            .map_err(Error::postgres("count units held"))?;
        Ok(UnitsHeld {
            live: row.get(0),
            returning: row.get(1),
        })
    }

    /// The sale's orders and returns as one snapshot (`REPEATABLE READ`); `None` for an unknown
    /// sale.
    pub async fn heal_source(&self, sale: i64) -> Result<Option<HealSource>> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(Error::postgres("begin heal snapshot"))?;
        let Some(row) = tx
            .query_opt("SELECT total FROM sales WHERE id = $1", &[&sale])
            .await
            .map_err(Error::postgres("heal sale"))?
        else {
            return Ok(None);
        };
        let total: i32 = row.get(0);
        let orders: Vec<HealedOrder> = tx
            .query(
                "SELECT gid, id, status FROM orders WHERE sale_id = $1",
                &[&sale],
            )
            .await
            .map_err(Error::postgres("heal orders"))?
            .iter()
            .map(|r| HealedOrder {
                gid: r.get(0),
                order_id: r.get(1),
                rejected: r.get::<_, &str>(2) == "rejected",
            })
            .collect();
        let live = tx
            .query_one(
                "SELECT count(*) FROM orders WHERE sale_id = $1 AND status IN ('pending', 'paid')",
                &[&sale],
            )
            .await
            .map_err(Error::postgres("heal live orders"))?
            .get(0);
        let returns = tx
            .query("SELECT order_id FROM returns WHERE sale_id = $1", &[&sale])
            .await
            .map_err(Error::postgres("heal returns"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit()
            .await
            .map_err(Error::postgres("end heal snapshot"))?;
        Ok(Some(HealSource {
            total: i64::from(total),
            orders,
            live,
            returns,
        }))
    }

    /// How many of `gids` already have a live order (their branch committed, completion not yet).
    pub async fn live_orders_among(&self, gids: &[String]) -> Result<i64> {
        if gids.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM orders WHERE gid = ANY($1) AND status IN ('pending', 'paid')",
                &[&gids],
            )
            .await
            .map_err(Error::postgres("count in-flight orders"))?;
        Ok(row.get(0))
    }
}

fn sale_from_row(row: &Row) -> Sale {
    Sale {
        id: row.get(0),
        name: row.get(1),
        total: row.get(2),
        sold: row.get(3),
        starts_at: row.get::<_, OffsetDateTime>(4),
        ends_at: row.get::<_, Option<OffsetDateTime>>(5),
        hold_seconds: row.get(6),
        price_cents: row.get(7),
        currency: row.get(8),
    }
}
