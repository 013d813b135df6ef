//! Sale events on a cluster: they reach every edge whichever node holds the sale, and a `restocked`
//! event the cluster lost cannot keep a sale closed.

use super::*;

/// The port of the node the edge's event stream last subscribed on (its log says).
fn listening_on(edge: &EdgeProcess) -> u16 {
    let log = edge.log();
    let line = log
        .lines()
        .rfind(|line| line.contains("subscribed to sale events"))
        .expect("the edge subscribed");
    let node = line
        .split_once("node=redis://127.0.0.1:")
        .expect("the subscription names its node")
        .1;
    node.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port")
}

/// The sold-out events an edge has heard (`edge_sale_events_total{name="sold_out"}`).
async fn sold_out_events(http: &reqwest::Client, edge: &EdgeProcess) -> anyhow::Result<f64> {
    let text = metrics::scrape(http, &edge.metrics_url()).await?;
    Ok(metrics::sample_sum(
        &text,
        "edge_sale_events_total",
        &[("name", "sold_out")],
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn sale_events_reach_every_edge_whichever_node_holds_the_sale() {
    let mut world = World::start().await;
    // Two edges, each listening on a node of its own choice.
    let mut edges = Vec::new();
    for _ in 0..2 {
        edges.push(world.edge_with(&EdgeOptions::default()).await);
    }
    let subscriptions =
        |edge: &EdgeProcess| edge.log().matches("subscribed to sale events").count();
    for edge in &edges {
        wait::until("the edge subscribed", BALANCE_DEADLINE, || async {
            Ok(subscriptions(edge) >= 1)
        })
        .await
        .unwrap();
    }
    let shop = world.shop();
    let mut by_primary = std::collections::BTreeMap::new();
    while by_primary.len() < 3 {
        let sale = world.create_sale(1).await;
        by_primary
            .entry(world.primary_of(sale).await)
            .or_insert(sale);
        assert!(sale < 64, "64 sales never covered three primaries");
    }
    // One sale per primary and each edge on one node: every edge hears sales held elsewhere.
    let mut heard = 0.0;
    for (primary, sale) in &by_primary {
        let (status, body) = shop.reserve(*sale, &format!("only-{sale}")).await;
        assert_eq!(status, 200, "{body}");
        let sold_at = Instant::now();
        heard += 1.0;
        for edge in &edges {
            wait::until(
                "the sold-out event on the edge",
                BALANCE_DEADLINE,
                || async { Ok(sold_out_events(&world.http, edge).await? >= heard) },
            )
            .await
            .unwrap();
        }
        eprintln!(
            "sale {sale} on the primary at :{primary}: both edges had its sold-out event {:.1} ms after the last unit's answer",
            sold_at.elapsed().as_secs_f64() * 1000.0
        );
    }

    // The node the first edge listens on dies: it listens on the next seed, and hears again.
    let listened = listening_on(&edges[0]);
    world.cluster.kill(listened).unwrap();
    wait::until(
        "the edge listens on another node",
        BALANCE_DEADLINE,
        || async { Ok(subscriptions(&edges[0]) >= 2) },
    )
    .await
    .unwrap();
    for sale in by_primary.values() {
        if world.primary_of(*sale).await == listened {
            world
                .cluster
                .wait_failover(&SaleKeys::new(*sale).stock(), listened)
                .await
                .unwrap();
        }
    }
    let sale = world.create_sale(1).await;
    let heard_before = sold_out_events(&world.http, &edges[0]).await.unwrap();
    wait::until(
        "a unit reserved after the node died",
        BALANCE_DEADLINE,
        || {
            let shop = shop.clone();
            async move {
                let (status, _) = shop.reserve(sale, "after-the-kill").await;
                Ok(status == 200 || status == 409)
            }
        },
    )
    .await
    .unwrap();
    wait::until(
        "the event heard on the new node",
        BALANCE_DEADLINE,
        || async { Ok(sold_out_events(&world.http, &edges[0]).await? > heard_before) },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restocked_event_lost_by_the_cluster_cannot_keep_a_sale_closed() {
    let world = World::start().await;
    let edge = world.edge().await;
    let sale = world.create_sale(1).await;
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "first").await,
        200
    );
    wait::until(
        "the edge flags the sale sold out",
        BALANCE_DEADLINE,
        || async { Ok(sold_out_events(&world.http, &edge).await? >= 1.0) },
    )
    .await
    .unwrap();
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "second").await,
        410
    );

    // A unit comes back and its event is lost (the node died before passing it on): here, the
    // first order cancelled in PostgreSQL and the stock raised on the sale's primary, with no
    // PUBLISH.
    let db = world.postgres.client().await.unwrap();
    db.execute(
        "UPDATE orders SET status = 'cancelled' WHERE sale_id = $1 AND uid = 'first'",
        &[&sale],
    )
    .await
    .unwrap();
    db.execute("UPDATE sales SET sold = sold - 1 WHERE id = $1", &[&sale])
        .await
        .unwrap();
    let primary = world.primary_of(sale).await;
    let mut node = world.cluster.node_connection(primary).await.unwrap();
    let () = redis::cmd("SET")
        .arg(SaleKeys::new(sale).stock())
        .arg(1)
        .query_async(&mut node)
        .await
        .unwrap();
    // The sale facts the edge fetches for the status polls find the unit and re-open the sale.
    let status_url = format!("{}/api/sales/{sale}/status", edge.url());
    wait::until("the edge re-opens the sale", BALANCE_DEADLINE, || {
        let req = world.http.get(&status_url).send();
        async move {
            let status: Value = req.await?.json().await?;
            Ok(status["state"] == "live")
        }
    })
    .await
    .unwrap();
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "second").await,
        200,
        "the unit that came back is sold\nedge log:\n{}",
        edge.log_tail()
    );
}
