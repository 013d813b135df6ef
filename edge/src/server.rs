//! Assembles the edge from its config: Redis, the first runtime, the sale event subscription,
//! the IP limiter's housekeeping, SIGHUP reloads, the admin server (`/metrics`) and the public
//! API, both on `service::listener` (slow-client timers, connection cap), until shutdown.

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use axum::{routing::get, Router};
use redis_layer::Redis;
use service::listener;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    config::Config,
    events,
    metrics::Metrics,
    reload, routes,
    state::{AppState, Runtime, Shared},
};

/// How often idle per-IP limiter entries are dropped.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// The edge's state, connected to Redis, with scripts loaded.
pub async fn connect(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<AppState> {
    let redis = Redis::connect(&config.redis).await?;
    let metrics = Metrics::default();
    let runtime = Runtime::build(config, None, &metrics).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(keys) = runtime.verifier.provider() {
        // The provider's keys before the first buyer; unreachable, the first token tries again.
        keys.fetch_if_due().await;
    }
    let state = Arc::new(Shared::new(runtime, config_path, redis, metrics));
    state.uid.preload().await?;
    state.global.preload().await?;
    Ok(state)
}

/// The admin API: `/metrics`. The captcha level is read as it renders: the level falls with time
/// (after the cool-down), not only when a challenge is asked for.
pub fn admin_router(state: AppState) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let state = state.clone();
            async move {
                state.metrics.captcha_level(state.difficulty.level_index());
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    state.metrics.render(),
                )
            }
        }),
    )
}

/// Serves the API on `listener` and metrics on `admin` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    admin: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (subscribed_tx, _) = watch::channel(false);
    let events = tokio::spawn(events::run(
        state.redis.nodes().to_vec(),
        state.soldout.clone(),
        state.metrics.clone(),
        subscribed_tx,
        stop_rx.clone(),
    ));
    let housekeeping = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
            loop {
                tick.tick().await;
                let runtime = state.runtime.load();
                runtime.ip.housekeeping();
                runtime.captcha_ip.housekeeping();
                runtime.captcha_uid.housekeeping();
            }
        })
    };
    let sighup = tokio::spawn(reload::on_sighup(state.clone()));
    let wear = {
        let state = state.clone();
        move || crate::routes::image_wear(&state.runtime.load().config.captcha)
    };
    let images = tokio::spawn(state.images.clone().refill(
        state.runtime.load().config.captcha.images_per_second,
        wear,
        stop_rx.clone(),
    ));

    let connections = state.runtime.load().config.http.connections.clone();
    let admin_router = admin_router(state.clone());
    let mut admin_stop = stop_rx.clone();
    let admin_server = tokio::spawn({
        let connections = connections.clone();
        let metrics = state.metrics.connections.clone();
        async move {
            listener::serve(
                "admin",
                admin,
                admin_router,
                &connections,
                metrics,
                async move {
                    let _ = admin_stop.changed().await;
                },
            )
            .await
        }
    });

    tracing::info!(addr = %listener.local_addr()?, "edge listening");
    let metrics = state.metrics.connections.clone();
    listener::serve(
        "api",
        listener,
        routes::router(state),
        &connections,
        metrics,
        shutdown,
    )
    .await?;
    let _ = stop_tx.send(true);
    housekeeping.abort();
    sighup.abort();
    let _ = events.await;
    let _ = images.await;
    let _ = admin_server.await;
    tracing::info!("edge stopped");
    Ok(())
}
