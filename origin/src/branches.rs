//! Phase 2 of the two-phase message, by group commit: every winner's branch (and every branch the
//! recovery poller runs again) is queued, and a few writer tasks each take what is queued, up to
//! `postgres.branch_batch`, and write it in ONE database transaction: the barrier rows, one
//! guarded `sold` update per sale, the order rows. Every winner of a sale updates that sale's row,
//! so branches written one by one serialise on its lock for a whole transaction each; in batches
//! the lock is taken once per batch, and the rate of winners is no longer the rate of commits.
//!
//! Each gid's outcome is what a branch of its own would give: a barrier row written once (a
//! repeat finds it and reads the earlier order), `pending` while the database has units and
//! `rejected` beyond them (the units go to the batch's gids in queue order). The units are taken
//! by a guarded update (`sold + k <= total`) that must change exactly the sale's row. A batch that
//! fails on a statement (a deadlock, a constraint, the guard) is retried gid by gid, so one bad gid
//! costs only itself; a batch that fails to reach the database fails for all its gids, which stay
//! due and come back through recovery.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use deadpool_postgres::Transaction;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::Statement;

use crate::{
    crash,
    database::Database,
    error::{Error, Result},
    metrics::Metrics,
};

/// Branch id and operation of the purchase branch in the barrier table.
const BRANCH: &str = "01";
const OP_ACTION: &str = "action";

/// Branches waiting for a writer, at most: beyond it a winner waits to be queued.
const QUEUE: usize = 8192;

/// What the branch left in the database for one gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchOutcome {
    pub order_id: i64,
    /// The database refused the unit (`rejected` row): it must go back to Redis.
    pub rejected: bool,
    /// `false` when an earlier run of this branch had done the work.
    pub fresh: bool,
}

/// One gid's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub sale: i64,
    pub uid: String,
    pub gid: String,
}

struct Job {
    branch: Branch,
    reply: oneshot::Sender<Result<BranchOutcome>>,
}

/// The queue of branches and its writers. Cheap to clone; the writers stop when every clone is
/// dropped.
#[derive(Clone)]
pub struct BranchWriter {
    queue: mpsc::Sender<Job>,
}

impl BranchWriter {
    /// Starts `writers` tasks writing batches of up to `batch` branches into `db`.
    pub fn start(db: Database, metrics: Metrics, writers: usize, batch: usize) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(
                db.clone(),
                metrics.clone(),
                rx.clone(),
                batch.max(1),
            ));
        }
        Self { queue }
    }

    /// Runs the branch of one gid (in whatever batch it lands in) and returns its outcome.
    pub async fn run(&self, branch: Branch) -> Result<BranchOutcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { branch, reply })
            .await
            .map_err(|_| Error::Protocol("branch writers stopped"))?;
        answer
            .await
            .map_err(|_| Error::Protocol("branch writer dropped a branch"))?
    }
}

/// One writer: takes one queued branch (waiting for it), then whatever else is queued up to
/// `batch`, and writes them together.
async fn write_batches(
    db: Database,
    metrics: Metrics,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    batch: usize,
) {
    let mut jobs = Vec::with_capacity(batch);
    loop {
        {
            let mut rx = queue.lock().await;
            if rx.recv_many(&mut jobs, batch).await == 0 {
                return;
            }
        }
        metrics.branch_batch(jobs.len());
        let (branches, replies): (Vec<Branch>, Vec<_>) =
            jobs.drain(..).map(|j| (j.branch, j.reply)).unzip();
        let outcomes = write_or_split(&db, &branches).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A dropped receiver is a request that gave up; its branch is written all the same.
            let _ = reply.send(outcome);
        }
    }
}

/// Writes `branches` in one transaction; when a statement fails, each branch alone.
async fn write_or_split(db: &Database, branches: &[Branch]) -> Vec<Result<BranchOutcome>> {
    match write_batch(db, branches).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(error) if branches.len() > 1 && is_statement_failure(&error) => {
            tracing::warn!(%error, batch = branches.len(), "branch batch failed, writing its branches one by one");
            let mut outcomes = Vec::with_capacity(branches.len());
            for branch in branches {
                outcomes.push(
                    write_batch(db, std::slice::from_ref(branch))
                        .await
                        .map(|mut o| o.remove(0)),
                );
            }
            outcomes
        }
        Err(error) => {
            let message = error.to_string();
            let mut outcomes = vec![Err(error)];
            outcomes.extend((1..branches.len()).map(|_| Err(Error::BranchBatch(message.clone()))));
            outcomes
        }
    }
}

/// The database answered a statement with an error or refused the guarded update (as opposed
/// to not being reachable).
fn is_statement_failure(error: &Error) -> bool {
    match error {
        Error::Postgres { source, .. } => source.as_db_error().is_some(),
        Error::StockGuard { .. } => true,
        _ => false,
    }
}

/// One transaction for `branches`, outcomes in their order. Public for the tests; the service
/// goes through [`BranchWriter`].
pub async fn write_batch(db: &Database, branches: &[Branch]) -> Result<Vec<BranchOutcome>> {
    // Each gid once, in gid order: two batches sharing gids take their barrier locks in the same
    // order (no deadlock). A gid queued twice (a request and the poller at once) gets the
    // outcome once, fresh for its first job only.
    let mut gids: Vec<&str> = branches.iter().map(|b| b.gid.as_str()).collect();
    gids.sort_unstable();
    gids.dedup();

    let mut client = db.client().await?;
    let tx = client
        .transaction()
        .await
        .map_err(Error::postgres("begin branch batch"))?;
    let insert_barriers = prepare(
        &tx,
        "INSERT INTO barriers (gid, branch, op)
         SELECT g, $2, $3 FROM unnest($1::text[]) AS g
         ON CONFLICT DO NOTHING RETURNING gid",
    )
    .await?;
    let fresh: HashSet<String> = tx
        .query(&insert_barriers, &[&gids, &BRANCH, &OP_ACTION])
        .await
        .map_err(Error::postgres("branch barriers"))?
        .iter()
        .map(|r| r.get(0))
        .collect();

    // Earlier runs' orders: a barrier without a fresh insert has its order committed.
    let mut done: HashMap<String, BranchOutcome> = HashMap::with_capacity(gids.len());
    if fresh.len() < gids.len() {
        let earlier: Vec<&str> = gids
            .iter()
            .copied()
            .filter(|g| !fresh.contains(*g))
            .collect();
        let read_orders = prepare(
            &tx,
            "SELECT gid, id, status FROM orders WHERE gid = ANY($1)",
        )
        .await?;
        for row in tx
            .query(&read_orders, &[&earlier])
            .await
            .map_err(Error::postgres("branch earlier orders"))?
        {
            let status: &str = row.get(2);
            done.insert(
                row.get(0),
                BranchOutcome {
                    order_id: row.get(1),
                    rejected: status == "rejected",
                    fresh: false,
                },
            );
        }
    }

    // The fresh gids by sale, in queue order; sales in id order (one lock order for all writers).
    let mut unwritten: HashSet<&str> = fresh.iter().map(String::as_str).collect();
    let mut by_sale: BTreeMap<i64, Vec<&Branch>> = BTreeMap::new();
    for branch in branches {
        if unwritten.remove(branch.gid.as_str()) {
            by_sale.entry(branch.sale).or_default().push(branch);
        }
    }
    for (sale, fresh) in by_sale {
        let created = write_orders(&tx, sale, &fresh).await?;
        done.extend(created);
    }
    tx.commit()
        .await
        .map_err(Error::postgres("commit branch batch"))?;

    let mut first_seen = HashSet::new();
    branches
        .iter()
        .map(|b| {
            let outcome = done
                .get(&b.gid)
                .copied()
                .ok_or(Error::Protocol("branch without an order"))?;
            let first = first_seen.insert(b.gid.as_str());
            Ok(BranchOutcome {
                fresh: outcome.fresh && first,
                ..outcome
            })
        })
        .collect()
}

/// Takes up to `fresh.len()` units of `sale` (row locked until the commit) and writes one order
/// per gid: `pending` for the first ones the database had units for, `rejected` for the rest.
async fn write_orders(
    tx: &Transaction<'_>,
    sale: i64,
    fresh: &[&Branch],
) -> Result<Vec<(String, BranchOutcome)>> {
    let wanted = i32::try_from(fresh.len()).map_err(|_| Error::Protocol("batch size"))?;
    let lock_sale = prepare(
        tx,
        "SELECT LEAST($2, total - sold), hold_seconds FROM sales WHERE id = $1 FOR UPDATE",
    )
    .await?;
    let row = tx
        .query_opt(&lock_sale, &[&sale, &wanted])
        .await
        .map_err(Error::postgres("branch stock read"))?;
    let (granted, hold) = row.map_or((0, 0), |r| (r.get::<_, i32>(0).max(0), r.get(1)));
    if granted > 0 {
        // The row is locked since the read, so the guard holds; it is there so that the database
        // never sells beyond its stock whatever the code before it computed.
        let take = prepare(
            tx,
            "UPDATE sales SET sold = sold + $2 WHERE id = $1 AND sold + $2 <= total",
        )
        .await?;
        let taken = tx
            .execute(&take, &[&sale, &granted])
            .await
            .map_err(Error::postgres("branch stock guard"))?;
        if taken != 1 {
            return Err(Error::StockGuard { sale, rows: taken });
        }
    }
    // Visited once per branch of the batch, so `in_db_transaction:N` means the Nth branch.
    for _ in fresh {
        crash::point(crash::Point::InDbTransaction);
    }
    let uids: Vec<&str> = fresh.iter().map(|b| b.uid.as_str()).collect();
    let gids: Vec<&str> = fresh.iter().map(|b| b.gid.as_str()).collect();
    let insert_orders = prepare(
        tx,
        "INSERT INTO orders (sale_id, uid, gid, status, reason, expires_at)
             SELECT $1, t.uid, t.gid,
                    CASE WHEN t.n <= $4 THEN 'pending' ELSE 'rejected' END,
                    CASE WHEN t.n <= $4 THEN NULL ELSE 'no unit left in the database' END,
                    CASE WHEN t.n <= $4 THEN now() + make_interval(secs => $5) ELSE now() END
             FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(uid, gid, n)
             RETURNING gid, id, status",
    )
    .await?;
    let rows = tx
        .query(
            &insert_orders,
            &[&sale, &uids, &gids, &i64::from(granted), &f64::from(hold)],
        )
        .await
        .map_err(Error::postgres("branch orders"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let status: &str = r.get(2);
            (
                r.get(0),
                BranchOutcome {
                    order_id: r.get(1),
                    rejected: status == "rejected",
                    fresh: true,
                },
            )
        })
        .collect())
}

/// The statement for `sql`, parsed and planned once per connection (deadpool's statement cache):
/// a batch runs the same few statements every time.
async fn prepare(tx: &Transaction<'_>, sql: &str) -> Result<Statement> {
    tx.prepare_cached(sql)
        .await
        .map_err(Error::postgres("prepare branch statement"))
}
