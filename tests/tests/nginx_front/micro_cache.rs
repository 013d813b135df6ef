//! The micro-cache turns 200 concurrent status requests into a handful for the edge; the requests
//! per second of the status JSON through nginx and from the edge alone, printed.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_status_requests_cost_the_edge_a_handful() {
    let world = World::start().await;
    let sale = world.stack.create_sale(10).await.unwrap();
    let status_url = format!("{}/api/sales/{sale}/status", world.nginx.url());
    let before = world.edge_status_requests().await;

    // 200 clients (distinct addresses, as the CDN reports them) ask at the same moment.
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200 {
        let request = client
            .get(&status_url)
            .header("x-forwarded-for", client_ip(n))
            .send();
        tasks.spawn(async move {
            let resp = request.await.unwrap();
            let cache = header(&resp, "x-cache-status").to_string();
            let (status, body) = json_answer(resp).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["state"], "live", "{body}");
            cache
        });
    }
    let mut cache = BTreeMap::<String, u32>::new();
    while let Some(answer) = tasks.join_next().await {
        *cache.entry(answer.unwrap()).or_default() += 1;
    }
    let answered = world.edge_status_requests().await - before;
    println!("200 concurrent status requests through nginx: X-Cache-Status {cache:?}; the edge answered {answered}");
    assert!(answered <= 5, "the edge answered {answered}: {cache:?}");
    assert!(cache.get("HIT").copied().unwrap_or(0) >= 150, "{cache:?}");

    // A query string does not get past the cache.
    let before = world.edge_status_requests().await;
    for n in 0..20 {
        let resp = client
            .get(format!("{status_url}?t={n}"))
            .header("x-forwarded-for", client_ip(1000 + n))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let answered = world.edge_status_requests().await - before;
    assert!(
        answered <= 3,
        "20 cache-busting requests reached the edge {answered} times"
    );

    // For the notes: the status JSON per second, served by nginx's cache and by the edge alone,
    // with the same client (32 connections, 2 s each). Each request through nginx comes from
    // another address, like a crowd (one address would be rate limited).
    let via_nginx = requests_per_second(&status_url, true).await;
    let edge_url = format!("{}/api/sales/{sale}/status", world.edge.url());
    let edge_alone = requests_per_second(&edge_url, false).await;
    println!(
        "status JSON: {via_nginx:.0} requests/s through nginx's micro-cache, {edge_alone:.0} requests/s from the edge alone \
         (same client, 32 connections, 2 s each, one machine; debug builds unless run with --release)"
    );
}

/// Closed loop: 32 tasks send the next GET as soon as the last is answered, for 2 s. Counts 200s.
async fn requests_per_second(url: &str, crowd: bool) -> f64 {
    const TASKS: u64 = 32;
    const RUN: Duration = Duration::from_secs(2);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(TASKS as usize)
        .build()
        .unwrap();
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + RUN;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (client, url, ok) = (client.clone(), url.to_string(), ok.clone());
        tasks.spawn(async move {
            let mut n = t << 20;
            while Instant::now() < deadline {
                let mut request = client.get(&url);
                if crowd {
                    request = request.header("x-forwarded-for", client_ip(n));
                }
                n += 1;
                let resp = request.send().await.unwrap();
                let success = resp.status() == 200;
                resp.bytes().await.unwrap();
                if success {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
