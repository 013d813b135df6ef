//! The rendered template passes `nginx -t`; static files get their cache headers and gzip, unknown
//! paths a 404, and an edge that is not there a JSON 503, every answer with the security headers.

use super::*;

#[tokio::test]
async fn the_rendered_config_passes_nginx_t() {
    let static_dir = static_folder();
    let edges = [
        format!("127.0.0.1:{}", net::free_port()),
        format!("127.0.0.1:{}", net::free_port()),
    ];
    let output = nginx_server::check_config(&edges, static_dir.path())
        .await
        .unwrap();
    println!("nginx -t: {output}");
    assert!(output.contains("test is successful"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn static_files_headers_unknown_paths_and_a_missing_edge() {
    let static_dir = static_folder();
    // An edge that is not there: nginx does not need it to start, and must say so in JSON.
    let nginx = front::nginx_without_edge(static_dir.path()).await.unwrap();
    let http = reqwest::Client::new();
    let url = nginx.url();
    let script_len = std::fs::metadata(static_dir.path().join("sale.js"))
        .unwrap()
        .len();

    // Versioned: a year, immutable, JavaScript (a module script of another type would not run);
    // also the page's modules, in their subfolder. Not versioned: a minute.
    for file in ["sale.js", "sale/main.js"] {
        let resp = http
            .get(format!("{url}/static/{file}?v=3f2a9c"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{file}");
        assert_eq!(header(&resp, "cache-control"), IMMUTABLE, "{file}");
        assert_eq!(
            header(&resp, "content-type"),
            "application/javascript; charset=utf-8",
            "{file}"
        );
        assert_security_headers(&resp, "static file");
        let on_disk = std::fs::read(static_dir.path().join(file)).unwrap();
        assert_eq!(resp.bytes().await.unwrap(), on_disk, "{file}");
    }
    let resp = http
        .get(format!("{url}/static/sale.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "cache-control"), "public, max-age=60");

    // gzip when asked for (reqwest is built without gzip: the body arrives compressed).
    let resp = http
        .get(format!("{url}/static/sale.js?v=3f2a9c"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-encoding"), "gzip");
    assert_eq!(header(&resp, "vary"), "Accept-Encoding");
    let compressed = resp.bytes().await.unwrap();
    assert_eq!(&compressed[..2], &[0x1f, 0x8b], "a gzip stream");
    println!(
        "gzip: sale.js {script_len} bytes -> {} bytes",
        compressed.len()
    );
    assert!((compressed.len() as u64) < script_len / 4);

    // Errors: JSON, with the security headers, and never cached as immutable.
    for path in [
        "/static/missing.js?v=1",
        "/static/.keep",
        "/",
        "/healthz",
        "/metrics",
        "/v1/sales",
        "/v1/sales/1",
        "/etc/passwd",
    ] {
        let resp = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_security_headers(&resp, path);
        assert_eq!(header(&resp, "cache-control"), "", "{path}");
        let (status, body) = json_answer(resp).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let resp = http
        .post(format!("{url}/v1/sales/1/reserve"))
        .json(&serde_json::json!({"uid": "mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_answer(resp).await.0, 404);

    // The edge is not there: a JSON 503, quickly, never a hang.
    for (method, path) in [("GET", "/api/sales/1/status"), ("POST", "/api/sales/1/buy")] {
        let started = Instant::now();
        let resp = http
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .send()
            .await
            .unwrap();
        assert_security_headers(&resp, path);
        let (status, body) = json_answer(resp).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("edge_unavailable")),
            "{method} {path}: {body}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    // The request id: the client's is kept, else nginx makes one.
    let resp = http
        .get(format!("{url}/nowhere"))
        .header("x-request-id", "client-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-request-id"), "client-id-42");
    let resp = http.get(format!("{url}/nowhere")).send().await.unwrap();
    let id = header(&resp, "x-request-id");
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
}
