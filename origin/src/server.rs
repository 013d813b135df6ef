//! Assembles the origin from its config: connects Redis and PostgreSQL, applies migrations,
//! loads the sale catalog, starts the recovery poller and serves the API (on
//! `service::listener`: slow-client timers, connection cap) until shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use redis_layer::Redis;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    activity::Activity,
    api::{self, AppState},
    branches::BranchWriter,
    config::Config,
    database::Database,
    error::Result,
    heal::Healer,
    holds::Holds,
    metrics::Metrics,
    purchase::Purchases,
    recovery::Poller,
    reservations::Reservations,
    sales::Catalog,
};

/// Connects to Redis and PostgreSQL as `config` says.
pub async fn connect(config: &Config) -> Result<(Reservations, Database)> {
    let redis = Reservations::new(
        Redis::connect(&config.redis).await?,
        config.recovery.timeout,
    )
    .waiting_for(config.redis.wait_replicas, config.redis.wait_timeout());
    let db = Database::connect(
        &config.postgres.url,
        config.postgres.pool_size,
        config.postgres.statement_timeout,
    )?;
    Ok((redis, db))
}

/// Serves on `listener` until `shutdown` resolves, then drains requests and stops the poller.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Database::migrate(&config.postgres.url).await?;
    let (redis, db) = connect(&config).await?;
    redis.preload().await?;
    let metrics = Metrics::default();
    let catalog = Catalog::default();
    for sale in db.recent_sales().await? {
        catalog.insert(sale);
    }
    let activity = Activity::new(redis.clone(), metrics.clone());
    let holds = Holds::new(
        db.clone(),
        redis.clone(),
        config.holds.clone(),
        metrics.clone(),
        activity.clone(),
    );
    let branches = BranchWriter::start(
        db.clone(),
        metrics.clone(),
        config.postgres.branch_writers,
        config.postgres.branch_batch,
    );
    let healer = Healer::new(
        redis.clone(),
        db.clone(),
        metrics.clone(),
        config.recovery.heal_lock,
        Duration::from_secs(config.sales.keys_retention_seconds),
    );
    let purchases = Purchases::new(
        redis,
        db,
        branches,
        metrics.clone(),
        healer,
        activity.clone(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let poller = Poller::new(
        purchases.clone(),
        holds.clone(),
        catalog.clone(),
        metrics.clone(),
        config.recovery.clone(),
        activity,
    );
    let poller = tokio::spawn(poller.run(stop_rx));
    let state = AppState {
        purchases,
        holds,
        catalog,
        metrics,
        config: Arc::new(config),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "origin listening");
    let connections = state.config.http.connections.clone();
    let metrics = state.metrics.connections.clone();
    service::listener::serve(
        "api",
        listener,
        api::router(state),
        &connections,
        metrics,
        shutdown,
    )
    .await?;
    let _ = stop_tx.send(true);
    let _ = poller.await;
    tracing::info!("origin stopped");
    Ok(())
}
