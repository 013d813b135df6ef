//! Bad input at the edge: the table of malformed, missing, oversized and unknown requests, each
//! a clear 4xx in the API's JSON error format and never a panic, driven through the edge's
//! router in memory; headers past the listener's buffer, which only a listener sees, on a
//! process.

use axum::{body::Body, http::Request};
use flash_tests::edge_process::EdgeOptions;
use serde_json::{json, Value};

use crate::{in_memory, jwt, start};

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_4xx_and_never_a_panic() {
    let (stack, edge) = in_memory().await;
    let sale = stack.create_sale(5).await.unwrap();
    let alice = jwt("alice");
    let pass_a = edge.pass(&alice, sale).await.unwrap();
    let buy_url = format!("/api/sales/{sale}/buy");
    let big = "x".repeat(10_000);

    let cases: Vec<(&str, String, Option<String>, &str, u16)> = vec![
        (
            "POST",
            buy_url.clone(),
            Some("{\"pass_token\": ".into()),
            "malformed",
            400,
        ),
        (
            "POST",
            buy_url.clone(),
            Some("{}".into()),
            "missing pass",
            400,
        ),
        (
            "POST",
            buy_url.clone(),
            Some(format!("{{\"pass_token\": \"{big}\"}}")),
            "oversized",
            413,
        ),
        (
            "POST",
            "/api/sales/999999/buy".into(),
            Some(json!({"pass_token": pass_a}).to_string()),
            "unknown sale",
            403,
        ),
        (
            "POST",
            "/api/sales/abc/buy".into(),
            Some("{}".into()),
            "bad sale id",
            400,
        ),
        (
            "GET",
            "/api/sales/999999/status".into(),
            None,
            "unknown sale status",
            404,
        ),
        (
            "GET",
            "/api/captcha".into(),
            None,
            "captcha without sale",
            400,
        ),
        (
            "GET",
            "/api/captcha?sale=999999".into(),
            None,
            "captcha for unknown sale",
            404,
        ),
        (
            "POST",
            "/api/captcha".into(),
            Some("{\"sale\": 1}".into()),
            "solution missing fields",
            400,
        ),
        (
            "POST",
            "/api/captcha".into(),
            Some(json!({"sale": sale, "challenge": "v1.garbage", "nonce": "1"}).to_string()),
            "forged challenge",
            403,
        ),
        (
            "POST",
            "/api/captcha".into(),
            Some(json!({"sale": sale, "challenge": "", "nonce": "abc"}).to_string()),
            "empty challenge",
            403,
        ),
        (
            "GET",
            "/api/captcha/image/x.y".into(),
            None,
            "image handle not one",
            404,
        ),
        (
            "GET",
            "/api/captcha/audio/1.-2.3.x".into(),
            None,
            "audio handle with a negative draw",
            404,
        ),
        (
            "GET",
            "/api/captcha/image/99999999999999999999999.0000000000000001.1.AAAAAAAAAAAAAAAAAAAAAA"
                .into(),
            None,
            "image slot out of range",
            404,
        ),
        ("GET", "/nowhere".into(), None, "unknown route", 404),
        ("DELETE", buy_url.clone(), None, "wrong method", 405),
    ];
    for (method, target, body, name, expected) in cases {
        let answer = edge
            .send(method, &target, Some(&alice), body)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let (json, text) = (answer.json, answer.text);
        assert_eq!(answer.status, expected, "{name}: {text}");
        assert!(
            json["error"].is_string() && json["message"].is_string(),
            "{name}: {text}"
        );
    }

    // Headers over max_header_bytes (16 KiB): 431 with a JSON body.
    let request = Request::get("/healthz")
        .header("x-junk", "y".repeat(20_000))
        .body(Body::empty())
        .unwrap();
    let answer = edge.answer(request).await.unwrap();
    assert_eq!(answer.status, 431);
    assert_eq!(answer.json["error"], "headers_too_large");
    stack.books(sale).await.unwrap().check().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_past_the_listener_buffer_get_a_bare_431_and_the_edge_keeps_serving() {
    let world = start(1, EdgeOptions::default()).await;
    let url = world.edge(0).url();
    // Over max_header_bytes (16 KiB): the router's 431 with a JSON body (the table above). Over
    // the listener's header buffer (32 KiB) hyper stops reading and answers a bare 431 itself
    // (nginx in front answers its own JSON far below that). Either way the edge keeps serving.
    let resp = world
        .http()
        .get(format!("{url}/healthz"))
        .header("x-junk", "y".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "headers_too_large");
    let resp = world
        .http()
        .get(format!("{url}/healthz"))
        .header("x-junk", "y".repeat(200_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    let resp = world
        .http()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the edge still serves");
}
