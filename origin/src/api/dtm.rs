//! The endpoints a dtm server calls (`[coordinator] kind = "dtm"`; docs/API.md, "dtm's calls"):
//! the branch of a purchase's message (`POST /v1/dtm/branch`) and its back-check
//! (`GET /v1/dtm/query`), with dtm's query `?gid=&trans_type=msg&branch_id=&op=`. Answers as dtm
//! v1.19 reads them: 200 success (a body never holding `FAILURE` or `ONGOING`), 409 with
//! `"dtm_result": "FAILURE"` a refusal for good, a 5xx an error of this origin's own (Redis or
//! PostgreSQL away), which dtm calls again later. Never reachable through nginx or the edge.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{known_sale, AppState};
use crate::{
    dtm::{BranchPayload, MessageGid},
    error::{Error, Refusal, Result},
    heal::keys_expire_at,
};

/// dtm's query string on every call.
#[derive(Debug, Deserialize)]
pub(super) struct DtmCall {
    gid: Option<String>,
    trans_type: Option<String>,
    branch_id: Option<String>,
    op: Option<String>,
}

impl DtmCall {
    /// The message's gid, once the call is the one expected (`branch_id` and `op`).
    fn message(
        query: Result<Query<Self>, QueryRejection>,
        branch_id: &str,
        op: &str,
    ) -> Result<MessageGid> {
        let bad = |message: String| Error::bad_request("invalid_dtm_call", message);
        let Query(call) = query.map_err(|e| bad(e.body_text()))?;
        if call.trans_type.as_deref() != Some("msg") {
            return Err(bad("trans_type must be msg".into()));
        }
        if call.branch_id.as_deref() != Some(branch_id) || call.op.as_deref() != Some(op) {
            return Err(bad(format!("expected branch_id={branch_id} and op={op}")));
        }
        let gid = call.gid.ok_or_else(|| bad("gid is missing".into()))?;
        gid.parse().map_err(|e| bad(format!("gid {gid:?}: {e}")))
    }
}

/// The branch: the order written once (its barrier row), then completed in Redis.
pub(super) async fn branch(
    State(state): State<AppState>,
    query: Result<Query<DtmCall>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>, Response> {
    let message = DtmCall::message(query, "01", "action").map_err(into_response)?;
    let payload: Option<BranchPayload> = serde_json::from_slice(&body).ok();
    let expected = BranchPayload {
        sale: message.gid.sale,
        uid: message.gid.uid.clone(),
    };
    if payload.as_ref() != Some(&expected) {
        state.metrics.dtm_call("branch", "failure");
        return Err(into_response(Refusal::Dtm {
            code: "payload_mismatch",
            message: "the payload is not the message's purchase".into(),
        }));
    }
    let outcome = state.purchases.dtm_branch(&message.gid).await;
    state
        .metrics
        .dtm_call("branch", if outcome.is_ok() { "ok" } else { "error" });
    let outcome = outcome.map_err(into_response)?;
    Ok(Json(json!({
        "dtm_result": "SUCCESS",
        "gid": message.gid.to_string(),
        "order_id": outcome.order_id,
        "rejected": outcome.rejected,
    })))
}

/// The back-check: 200 when the message's reservation exists, else the marker that refuses a
/// later one is written and the answer is 409 FAILURE.
pub(super) async fn query(
    State(state): State<AppState>,
    query: Result<Query<DtmCall>, QueryRejection>,
) -> Result<Json<Value>, Response> {
    let message = DtmCall::message(query, "00", "msg").map_err(into_response)?;
    let retention = Duration::from_secs(state.config.sales.keys_retention_seconds);
    let expire_at = match known_sale(&state, message.gid.sale).await {
        Ok(Some(sale)) => keys_expire_at(sale.ends_at, retention),
        // PostgreSQL away: the marker lasts the retention from now.
        Ok(None) => keys_expire_at(Some(super::now()), retention),
        Err(Error::UnknownSale(_)) => {
            return Err(into_response(Refusal::Dtm {
                code: "unknown_sale",
                message: "no such sale: nothing was reserved".into(),
            }))
        }
        Err(error) => return Err(into_response(error)),
    };
    let prepared = state
        .purchases
        .redis()
        .query_prepared(&message, expire_at)
        .await;
    let outcome = match prepared {
        Ok(true) => "prepared",
        Ok(false) => "failure",
        Err(_) => "error",
    };
    state.metrics.dtm_call("query", outcome);
    if !prepared.map_err(into_response)? {
        return Err(into_response(Refusal::Dtm {
            code: "not_reserved",
            message: "the message has no reservation and will never have one".into(),
        }));
    }
    Ok(Json(
        json!({"dtm_result": "SUCCESS", "gid": message.gid.to_string()}),
    ))
}

type Response = axum::response::Response;

fn into_response(answer: impl axum::response::IntoResponse) -> Response {
    answer.into_response()
}
