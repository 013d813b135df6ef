//! The origin's internal HTTP API as an axum `Router` built from state, so tests can drive it in
//! memory: sale creation and status, reservation, orders (`orders`), the payment service's
//! webhook (`payments`), the calls of a dtm coordinator (`dtm`), health and metrics.
//! Documented in docs/API.md.

mod dtm;
mod orders;
mod payments;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{DefaultBodyLimit, Path, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use flash_wire::{ReserveRefusal, Reserved, ReservedStatus, SaleFacts, UidBody};
use serde_json::{json, Value};
use service::body::{ApiJson, BodyError, JsonBodies};
use time::OffsetDateTime;
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    config::Config,
    error::{Error, Refusal, Result},
    heal::keys_expire_at,
    holds::Holds,
    metrics::Metrics,
    purchase::{Purchase, Purchases},
    reservations::Loss,
    sales::{Catalog, CreateSale, Sale, SaleState},
};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub purchases: Purchases,
    pub holds: Holds,
    pub catalog: Catalog,
    pub metrics: Metrics,
    pub config: Arc<Config>,
}

/// The API, ready to serve.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.http.body_limit_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/sales", post(create_sale))
        .route("/v1/sales/{id}", get(sale_status))
        .route("/v1/sales/{id}/reserve", post(reserve))
        .route("/v1/orders/{id}", get(orders::order).delete(orders::cancel_order))
        .route("/v1/orders/{id}/extend", post(orders::extend))
        .route("/v1/payments/webhook", post(payments::webhook))
        .route(crate::dtm::BRANCH_PATH, post(dtm::branch))
        .route(crate::dtm::QUERY_PATH, get(dtm::query))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(SequentialId::default()))
        .with_state(state)
}

/// Request ids for requests that come without one: a per-process sequence.
#[derive(Clone, Default)]
struct SequentialId(Arc<std::sync::atomic::AtomicU64>);

impl MakeRequestId for SequentialId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("origin-{n}"))
            .ok()
            .map(RequestId::new)
    }
}

/// JSON bodies (`ApiJson`): a bad one is answered as this API's 400 or 413.
impl JsonBodies for AppState {
    type Rejection = Error;

    fn body_limit(&self) -> usize {
        self.config.http.body_limit_bytes
    }
}

impl From<BodyError> for Error {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => Self::TooLarge { limit },
            other => Self::bad_request(other.code(), other.to_string()),
        }
    }
}

fn sale_id(raw: &str) -> Result<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::bad_request("invalid_sale_id", "sale id must be a positive integer"))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Error {
    Error::NoRoute
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// A sale as the API shows it. `remaining` is Redis's count, `None` when Redis did not answer:
/// then `remaining` is `null` and the state is judged on the database's `sold` instead.
fn sale_facts(sale: &Sale, remaining: Option<i64>, at: OffsetDateTime) -> SaleFacts {
    let units_left = remaining.unwrap_or(i64::from(sale.total) - i64::from(sale.sold));
    SaleFacts {
        id: sale.id,
        name: sale.name.clone(),
        stock: i64::from(sale.total),
        remaining: remaining.map(|r| r.max(0)),
        sold: i64::from(sale.sold),
        state: sale.state(at, units_left),
        starts_at: sale.starts_at,
        ends_at: sale.ends_at,
        hold_seconds: i64::from(sale.hold_seconds),
        price_cents: sale.price_cents,
        currency: sale.currency.clone(),
        server_time: at,
    }
}

async fn create_sale(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateSale>,
) -> Result<Response> {
    let new = body.validate(
        now(),
        state.config.sales.max_stock,
        state.config.sales.default_hold_seconds,
    )?;
    // The stock is put into Redis inside the sale's database transaction: when Redis fails, the
    // sale is rolled back and the creation answers 503, to be retried.
    let redis = state.purchases.redis();
    let sale = state
        .purchases
        .db()
        .create_sale(&new, |sale| async move {
            redis
                .open_stock(sale.id, u32::try_from(sale.total).unwrap_or(0))
                .await
                .map(|_| ())
        })
        .await?;
    tracing::info!(sale = sale.id, stock = sale.total, name = %sale.name, "sale created");
    let body = sale_facts(&sale, Some(i64::from(sale.total)), now());
    state.catalog.insert(sale);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn sale_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SaleFacts>> {
    let id = sale_id(&id)?;
    let sale = state
        .purchases
        .db()
        .sale(id)
        .await?
        .ok_or(Error::UnknownSale(id))?;
    // Redis away (stopped, restarting, timing out) answers the status without the count rather
    // than a 503: the page keeps showing the sale as it is (live, with Buy, its buy then tells
    // the outage with a Retry-After), where a 503 would turn every polling page to "checking the
    // sale again" and, through the edge, stop telling the start and the end. The database's
    // `sold` stands in for the state; only the count is missing.
    let remaining = match state.purchases.redis().remaining(id).await {
        Ok(remaining) => Some(remaining.unwrap_or(0)),
        Err(error) => {
            tracing::warn!(sale = id, %error, "sale status without Redis's count");
            None
        }
    };
    Ok(Json(sale_facts(&sale, remaining, now())))
}

/// The sale as this origin knows it: from the catalog, else from PostgreSQL. `None` when the
/// database is unreachable: the reservation then goes on and Redis decides.
async fn known_sale(state: &AppState, id: i64) -> Result<Option<Arc<Sale>>> {
    if let Some(sale) = state.catalog.get(id) {
        return Ok(Some(sale));
    }
    match state.purchases.db().sale(id).await {
        Ok(Some(sale)) => Ok(Some(state.catalog.insert(sale))),
        Ok(None) => Err(Error::UnknownSale(id)),
        Err(error) => {
            tracing::warn!(sale = id, %error, "sale lookup failed, Redis decides");
            Ok(None)
        }
    }
}

async fn reserve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UidBody>,
) -> Result<Response> {
    let id = sale_id(&id)?;
    let uid = body.uid;
    valid_uid(&uid, state.config.http.max_uid_bytes)?;
    let known = known_sale(&state, id).await?;
    if let Some(sale) = &known {
        let at = now();
        match sale.state(at, 1) {
            SaleState::Upcoming => {
                state.metrics.reservation("not_started");
                let starts_at = sale.starts_at;
                return Ok(
                    Refusal::Reserve(ReserveRefusal::NotStarted { starts_at }).into_response()
                );
            }
            SaleState::Ended => {
                state.metrics.reservation("ended");
                return Ok(Refusal::Reserve(ReserveRefusal::Ended).into_response());
            }
            SaleState::Live | SaleState::SoldOut => {}
        }
    }
    let retention = Duration::from_secs(state.config.sales.keys_retention_seconds);
    let expire_at = known
        .as_ref()
        .map_or(0, |sale| keys_expire_at(sale.ends_at, retention));
    let answer = match state.purchases.reserve(id, &uid, expire_at).await? {
        Purchase::Reserved {
            gid,
            order_id,
            left,
        } => Json(Reserved {
            status: ReservedStatus::Reserved,
            gid: gid.to_string(),
            order_id,
            confirmed: order_id.is_some(),
            remaining_hint: left,
        })
        .into_response(),
        Purchase::Duplicate { gid, earlier } => Refusal::Reserve(ReserveRefusal::Duplicate {
            gid: gid.to_string(),
            state: earlier.state,
            outcome: earlier.outcome,
            order_id: earlier.order_id,
        })
        .into_response(),
        Purchase::SoldOut => Refusal::Reserve(ReserveRefusal::SoldOut {
            gid: None,
            order_id: None,
        })
        .into_response(),
        Purchase::RejectedByDatabase { gid, order_id } => {
            Refusal::Reserve(ReserveRefusal::SoldOut {
                gid: Some(gid.to_string()),
                order_id: Some(order_id),
            })
            .into_response()
        }
        Purchase::Healing => return Err(Error::StockUnavailable(id)),
        Purchase::NoStock => return Err(no_stock(&state, id, known.is_some()).await),
    };
    Ok(answer)
}

/// Redis has no stock key for sale `id`: 404 when PostgreSQL does not know the sale either; a
/// sale it knows has lost its stock in Redis, which is 503 `stock_unavailable` while the healer
/// rebuilds it from PostgreSQL. PostgreSQL is asked only here, never on the path of a sale with
/// stock.
async fn no_stock(state: &AppState, id: i64, known: bool) -> Error {
    let known = known
        || match state.purchases.db().sale(id).await {
            Ok(sale) => sale.is_some(),
            Err(error) => {
                state.metrics.reservation("error");
                return error;
            }
        };
    if !known {
        state.metrics.reservation("unknown_sale");
        return Error::UnknownSale(id);
    }
    state.metrics.reservation("stock_unavailable");
    state.purchases.healer().notice(id, Loss::MissingStock);
    Error::StockUnavailable(id)
}

fn valid_uid(uid: &str, max: usize) -> Result<()> {
    if uid.is_empty() || uid.len() > max || uid.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "invalid_uid",
            format!("uid must be 1 to {max} bytes without control characters"),
        ));
    }
    Ok(())
}
