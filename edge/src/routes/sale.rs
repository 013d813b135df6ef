//! `GET /api/sales/{id}/status` (the JSON browsers poll, cacheable for a second) and
//! `GET /sale/{id}` (the page, cacheable).

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::header,
    response::{Html, IntoResponse, Response},
    Extension, Json,
};

use super::{counted, sale_id, Ctx};
use crate::{
    clock,
    error::Error,
    pages,
    sales::{SaleInfo, State as SaleState},
    state::AppState,
};

/// The sale of the path's `raw` id and its facts (the cache's, else the origin's).
async fn facts(state: &AppState, ctx: &Ctx, raw: &str) -> Result<(i64, Arc<SaleInfo>), Error> {
    let id = sale_id(raw)?;
    let origins = state.runtime.load().origins.clone();
    let info = state.sales.get(&origins, id, &ctx.request_id).await?;
    Ok((id, info))
}

pub async fn status(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let answer = async {
        let (id, info) = facts(&state, &ctx, &id).await?;
        let runtime = state.runtime.load();
        let status = info.status(clock::now(), state.soldout.is_sold_out(id));
        let pages = &runtime.config.pages;
        let cache = match status.state {
            SaleState::Upcoming | SaleState::Live => format!(
                "public, max-age={}, stale-while-revalidate={}",
                pages.status_max_age_seconds, pages.status_stale_seconds
            ),
            SaleState::SoldOut => format!("public, max-age={}", pages.sold_out_max_age_seconds),
            SaleState::Ended => format!("public, max-age={}", pages.final_max_age_seconds),
        };
        Ok::<_, Error>(([(header::CACHE_CONTROL, cache)], Json(status)).into_response())
    }
    .await;
    match answer {
        Ok(resp) => counted("served", "", resp),
        Err(e @ Error::UnknownSale(_)) => {
            // The true answer for this very URL (nginx passes the path it keys its cache on):
            // cacheable like a live status, so a flood of one unknown id costs one request a
            // second. Every other error stays `no-store`.
            let max_age = state.runtime.load().config.pages.status_max_age_seconds;
            let mut resp = counted("failed", e.code(), e);
            if let Ok(value) = header::HeaderValue::from_str(&format!("public, max-age={max_age}"))
            {
                resp.headers_mut().insert(header::CACHE_CONTROL, value);
            }
            resp
        }
        Err(e) => counted("failed", e.code(), e),
    }
}

pub async fn page(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let answer = async {
        let (id, info) = facts(&state, &ctx, &id).await?;
        let runtime = state.runtime.load();
        let links = pages::Links::from_config(&runtime.config);
        let html = pages::sale_page(&info, clock::now(), state.soldout.is_sold_out(id), links)
            .map_err(|e| Error::Internal(format!("sale page: {e}")))?;
        let cache = format!(
            "public, max-age={}",
            runtime.config.pages.page_max_age_seconds
        );
        Ok::<_, Error>(([(header::CACHE_CONTROL, cache)], Html(html)).into_response())
    }
    .await;
    match answer {
        Ok(resp) => counted("served", "", resp),
        Err(e) => counted("failed", e.code(), e),
    }
}
