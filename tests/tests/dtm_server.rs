//! Proves the dtm harness against the real dtm v1.19.0 and records its wire behaviour (written up
//! in docs/ARCHITECTURE.md, "dtm's protocol, as v1.19.0 speaks it"): a two-phase message
//! submitted through dtm's HTTP API calls its step on a server of the test's with the payload; a
//! dtm killed after `prepare` back-checks the message after its restart and follows the answer;
//! two dtm servers share one Redis; dtm's own flash-sale bench server runs.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::Router;
use flash_tests::dtm_server::{DtmBench, DtmServer, DtmSettings};
use flash_tests::redis_server::RedisServer;
use flash_tests::wait;
use redis::AsyncCommands;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How long dtm may take to call back: its back-check comes about `timeout_to_fail` + 10 s after
/// prepare (see docs/ARCHITECTURE.md).
const CALL_DEADLINE: Duration = Duration::from_secs(40);

/// One request dtm sent to the test's server.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    body: String,
}

/// The test's server for dtm to call: records every request, answers 200 `SUCCESS`, or 409
/// `FAILURE` for a path ending in `/refuse`; its base URL.
async fn serve_calls() -> anyhow::Result<(String, mpsc::UnboundedReceiver<Call>)> {
    let (calls, received) = mpsc::unbounded_channel();
    let record = |State(calls): State<mpsc::UnboundedSender<Call>>,
                  method: Method,
                  uri: Uri,
                  Query(query): Query<BTreeMap<String, String>>,
                  body: String| async move {
        let path = uri.path().to_owned();
        let refused = path.ends_with("/refuse");
        let _ = calls.send(Call {
            method,
            path,
            query,
            body,
        });
        if refused {
            (StatusCode::CONFLICT, r#"{"dtm_result":"FAILURE"}"#)
        } else {
            (StatusCode::OK, r#"{"dtm_result":"SUCCESS"}"#)
        }
    };
    let app = Router::new().fallback(record).with_state(calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

async fn next_call(calls: &mut mpsc::UnboundedReceiver<Call>) -> anyhow::Result<Call> {
    tokio::time::timeout(CALL_DEADLINE, calls.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the test's server stopped"))
}

/// A message of one step calling `{calls}/action` with `payload`, back-checked at
/// `{calls}/{check}`.
fn message(gid: &str, calls: &str, check: &str, payload: &Value) -> Value {
    json!({
        "gid": gid,
        "trans_type": "msg",
        "steps": [{"action": format!("{calls}/action")}],
        "payloads": [payload.to_string()],
        "query_prepared": format!("{calls}/{check}"),
        "timeout_to_fail": 1,
    })
}

/// `POST {dtm}/{verb}` with `body`; dtm's answer must be 200 `SUCCESS`.
async fn post(dtm: &DtmServer, verb: &str, body: &Value) -> anyhow::Result<()> {
    let answer = reqwest::Client::new()
        .post(format!("{}/{verb}", dtm.url()))
        .json(body)
        .send()
        .await?;
    let status = answer.status();
    let text = answer.text().await?;
    anyhow::ensure!(
        status == StatusCode::OK && text.contains("SUCCESS"),
        "{verb}: {status} {text}"
    );
    Ok(())
}

/// What `GET {dtm}/query?gid=` says of the message: `transaction.status`, `None` when unknown.
async fn status(dtm: &DtmServer, gid: &str) -> anyhow::Result<Option<String>> {
    let url = format!("{}/query?gid={gid}", dtm.url());
    let answer: Value = reqwest::get(&url).await?.error_for_status()?.json().await?;
    Ok(answer["transaction"]["status"].as_str().map(str::to_owned))
}

async fn until_status(dtm: &DtmServer, gid: &str, expected: &str) -> anyhow::Result<()> {
    wait::until(
        &format!("{gid} to be {expected}"),
        CALL_DEADLINE,
        || async { Ok(status(dtm, gid).await?.as_deref() == Some(expected)) },
    )
    .await?;
    Ok(())
}

fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[tokio::test]
async fn a_submitted_message_calls_its_step_with_the_payload() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let dtm = DtmServer::start(DtmSettings::new(redis.port(), "{dtm-test}")).await?;
    let (calls_url, mut calls) = serve_calls().await?;

    let gid = "sale-1-user-7";
    let payload = json!({"sale": 1, "uid": 7});
    let body = message(gid, &calls_url, "check", &payload);
    post(&dtm, "prepare", &body).await?;
    assert_eq!(status(&dtm, gid).await?.as_deref(), Some("prepared"));
    post(&dtm, "submit", &body).await?;

    let call = next_call(&mut calls).await?;
    assert_eq!(call.method, Method::POST, "{call:?}");
    assert_eq!(call.path, "/action", "{call:?}");
    let expected = [
        ("gid", gid),
        ("trans_type", "msg"),
        ("branch_id", "01"),
        ("op", "action"),
    ];
    assert_eq!(call.query, query(&expected), "{call:?}");
    assert_eq!(call.body, payload.to_string(), "{call:?}");
    until_status(&dtm, gid, "succeed").await?;

    let keys: Vec<String> = redis.connection().await?.keys("{dtm-test}*").await?;
    assert!(!keys.is_empty(), "dtm's store is under its prefix");
    Ok(())
}

#[tokio::test]
async fn a_dtm_killed_after_prepare_back_checks_after_its_restart() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let mut dtm = DtmServer::start(DtmSettings::new(redis.port(), "{dtm-test}")).await?;
    let (calls_url, mut calls) = serve_calls().await?;

    let payload = json!({"sale": 2, "uid": 9});
    post(
        &dtm,
        "prepare",
        &message("kept", &calls_url, "check", &payload),
    )
    .await?;
    post(
        &dtm,
        "prepare",
        &message("refused", &calls_url, "refuse", &payload),
    )
    .await?;
    dtm.kill();
    assert!(
        calls.try_recv().is_err(),
        "nothing was called before the crash"
    );
    dtm.restart().await?;

    let mut checked = BTreeMap::new();
    let mut steps = Vec::new();
    while checked.len() < 2 || steps.is_empty() {
        let call = next_call(&mut calls).await?;
        let gid = call.query.get("gid").cloned().unwrap_or_default();
        if call.path == "/action" {
            steps.push(gid);
            continue;
        }
        assert_eq!(call.method, Method::GET, "{call:?}");
        let expected = [
            ("gid", gid.as_str()),
            ("trans_type", "msg"),
            ("branch_id", "00"),
            ("op", "msg"),
        ];
        assert_eq!(call.query, query(&expected), "{call:?}");
        assert_eq!(call.body, "", "{call:?}");
        checked.insert(gid, call.path);
    }
    let expected_checks = [("kept", "/check"), ("refused", "/refuse")];
    assert_eq!(checked, query(&expected_checks));
    until_status(&dtm, "kept", "succeed").await?;
    until_status(&dtm, "refused", "failed").await?;
    while let Ok(call) = calls.try_recv() {
        steps.extend(call.query.get("gid").cloned());
    }
    assert_eq!(steps, ["kept"], "a refused message's step is never called");
    Ok(())
}

#[tokio::test]
async fn two_dtm_servers_share_one_redis() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let first = DtmServer::start(DtmSettings::new(redis.port(), "{dtm-a}")).await?;
    let second = DtmServer::start(DtmSettings::new(redis.port(), "{dtm-a}")).await?;
    let apart = DtmServer::start(DtmSettings::new(redis.port(), "{dtm-b}")).await?;
    let (calls_url, _calls) = serve_calls().await?;

    post(
        &first,
        "prepare",
        &message("shared", &calls_url, "check", &json!({})),
    )
    .await?;
    assert_eq!(
        status(&second, "shared").await?.as_deref(),
        Some("prepared")
    );
    assert_eq!(
        status(&apart, "shared").await?,
        None,
        "another prefix, another store"
    );
    post(
        &second,
        "abort",
        &message("shared", &calls_url, "check", &json!({})),
    )
    .await?;
    assert_eq!(status(&first, "shared").await?.as_deref(), Some("failed"));
    Ok(())
}

#[tokio::test]
async fn dtms_flash_sale_bench_refuses_on_stock_zero() -> anyhow::Result<()> {
    let bench = DtmBench::start().await?;
    bench.reset().await?;
    let stock: String = bench
        .redis()
        .connection()
        .await?
        .get("{a}--stock-1")
        .await?;
    assert_eq!(stock, "0");

    let answer = reqwest::get(bench.flash_sales_url()).await?;
    let status = answer.status();
    let text = answer.text().await?;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("FAILURE"), "{text}");
    Ok(())
}
