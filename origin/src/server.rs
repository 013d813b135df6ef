//! Assembles the origin from its config (`App::assemble`, also used by the tests that drive the
//! API in memory): connects Redis and PostgreSQL, applies migrations, loads the sale catalog,
//! starts the recovery poller; `run` serves the API (on
//! `service::listener`: slow-client timers, connection cap) until shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use redis_layer::Redis;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    activity::Activity,
    api::{self, AppState},
    branches::BranchWriter,
    config::{Config, CoordinatorKind},
    database::Database,
    dtm::Dtm,
    error::Result,
    heal::Healer,
    holds::Holds,
    metrics::Metrics,
    purchase::Purchases,
    recovery::{self, Poller},
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

/// The tasks that run beside the API (the recovery poller), stopped by [`Background::stop`].
pub struct Background {
    stop: watch::Sender<bool>,
    poller: JoinHandle<()>,
}

impl Background {
    /// Tells the poller to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.poller.await;
    }
}

/// The origin assembled from its config: the API as a `Router` over its state, ready to serve or
/// to be driven in memory, and the tasks running beside it.
pub struct App {
    pub router: Router,
    /// The counters (the listener counts its connections into `metrics.connections`).
    pub metrics: Metrics,
    pub background: Background,
}

impl App {
    /// Builds the origin from `config`: migrations, connections, script preload, catalog, the
    /// recovery poller started.
    pub async fn assemble(config: Config) -> Result<Self> {
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
        let mut purchases = Purchases::new(
            redis,
            db,
            branches,
            metrics.clone(),
            healer,
            activity.clone(),
        );
        if config.coordinator.kind == CoordinatorKind::Dtm {
            purchases = purchases.with_dtm(Dtm::new(&config.coordinator)?);
        }
        let (stop, stop_rx) = watch::channel(false);
        let poller = Poller::new(recovery::Parts {
            purchases: purchases.clone(),
            holds: holds.clone(),
            catalog: catalog.clone(),
            metrics: metrics.clone(),
            config: config.recovery.clone(),
            activity,
        });
        let poller = tokio::spawn(poller.run(stop_rx));
        let state = AppState {
            purchases,
            holds,
            catalog,
            metrics: metrics.clone(),
            config: Arc::new(config),
        };
        Ok(Self {
            router: api::router(state),
            metrics,
            background: Background { stop, poller },
        })
    }
}

/// Serves on `listener` until `shutdown` resolves, then drains requests and stops the poller.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let connections = config.http.connections.clone();
    let app = App::assemble(config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "origin listening");
    let metrics = app.metrics.connections.clone();
    service::listener::serve("api", listener, app.router, &connections, metrics, shutdown).await?;
    app.background.stop().await;
    tracing::info!("origin stopped");
    Ok(())
}
