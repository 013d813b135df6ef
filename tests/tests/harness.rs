//! Proves the test harness itself: real Redis and PostgreSQL servers start on free ports, answer,
//! count commands, keep their data across a crash or a stop, and several start at once; a real
//! Redis Cluster starts with three shards, counts its primaries' commands, and fails a killed
//! primary over to its replica.

use std::time::Duration;

use flash_tests::postgres_server::PostgresServer;
use flash_tests::redis_cluster::{RedisCluster, Role};
use flash_tests::redis_server::RedisServer;
use flash_tests::wait;
use redis::AsyncCommands;

#[tokio::test]
async fn redis_starts_and_answers() -> anyhow::Result<()> {
    let server = RedisServer::start().await?;
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    let mut redis = server.connection().await?;
    let () = redis.set("sale:1:stock", 10).await?;
    let stock: u32 = redis.get("sale:1:stock").await?;
    assert_eq!(stock, 10);
    Ok(())
}

#[tokio::test]
async fn redis_command_stats_count_calls() -> anyhow::Result<()> {
    let server = RedisServer::start().await?;
    let mut redis = server.connection().await?;
    server.reset_stats().await?;
    assert_eq!(
        server.total_calls().await?,
        0,
        "nothing was sent since the reset"
    );

    for i in 0..3 {
        let () = redis.set(format!("key:{i}"), i).await?;
    }
    let _: Option<String> = redis.get("key:0").await?;
    let script = redis::Script::new("return redis.call('INCR', KEYS[1])");
    for _ in 0..2 {
        let _: i64 = script.key("counter").invoke_async(&mut redis).await?;
    }

    let stats = server.command_stats().await?;
    assert_eq!(stats.get("set"), Some(&3), "{stats:?}");
    assert_eq!(stats.get("get"), Some(&1), "{stats:?}");
    // The first invocation fails with NOSCRIPT (a failed call still counts), loads the script
    // and retries; the second hits.
    assert_eq!(stats.get("evalsha"), Some(&3), "{stats:?}");
    assert_eq!(stats.get("script|load"), Some(&1), "{stats:?}");
    assert_eq!(stats.get("incr"), Some(&2), "{stats:?}");
    assert!(server.total_calls().await? >= 8, "{stats:?}");

    server.reset_stats().await?;
    assert_eq!(server.total_calls().await?, 0);
    Ok(())
}

#[tokio::test]
async fn redis_restart_replays_the_aof_fsynced_by_always() -> anyhow::Result<()> {
    let mut server = RedisServer::start().await?;
    let port = server.port();
    let mut redis = server.connection().await?;
    // With `always`, the reply to a write comes after its fsync.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query_async(&mut redis)
        .await?;
    let () = redis.set("order:1", "paid").await?;
    let () = redis.incr("sale:1:sold", 7).await?;

    server.kill();
    assert!(server.pid().is_none());
    assert!(
        server.connection().await.is_err(),
        "the killed server still answers"
    );
    server.restart().await?;

    assert_eq!(server.port(), port);
    let mut redis = server.connection().await?;
    let order: String = redis.get("order:1").await?;
    let sold: u32 = redis.get("sale:1:sold").await?;
    assert_eq!((order.as_str(), sold), ("paid", 7));
    Ok(())
}

#[tokio::test]
async fn redis_restart_replays_the_aof_after_a_rewrite() -> anyhow::Result<()> {
    let mut server = RedisServer::start().await?;
    let mut redis = server.connection().await?;
    let () = redis.set("order:2", "reserved").await?;
    let () = redis::cmd("BGREWRITEAOF").query_async(&mut redis).await?;
    // The rewrite forks a child that writes and fsyncs a new base file.
    wait::until(
        "the AOF rewrite to finish",
        Duration::from_secs(20),
        || async {
            let persistence = server.info("persistence").await?;
            let done = |key: &str| persistence.get(key).map(String::as_str) == Some("0");
            Ok(done("aof_rewrite_in_progress") && done("aof_rewrite_scheduled"))
        },
    )
    .await?;

    server.kill();
    server.restart().await?;
    let order: String = server.connection().await?.get("order:2").await?;
    assert_eq!(order, "reserved");
    Ok(())
}

#[tokio::test]
async fn postgres_starts_and_answers() -> anyhow::Result<()> {
    let server = PostgresServer::start().await?;
    assert_eq!(
        server.url(),
        format!("postgres://flash@127.0.0.1:{}/flash", server.port())
    );
    let client = server.client().await?;
    let row = client
        .query_one("SELECT 1::int4 AS one, current_database() AS db", &[])
        .await?;
    assert_eq!(row.get::<_, i32>("one"), 1);
    assert_eq!(row.get::<_, String>("db"), "flash");

    // The URL is what services are given: it must work on its own.
    let (by_url, connection) =
        tokio_postgres::connect(&server.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let row = by_url.query_one("SELECT current_user::text", &[]).await?;
    assert_eq!(row.get::<_, String>(0), "flash");
    Ok(())
}

#[tokio::test]
async fn postgres_stop_and_start_again_keep_rows() -> anyhow::Result<()> {
    let mut server = PostgresServer::start().await?;
    let port = server.port();
    server
        .client()
        .await?
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, state text NOT NULL);
             INSERT INTO orders VALUES (1, 'paid'), (2, 'reserved');",
        )
        .await?;

    server.stop().await?;
    assert!(server.pid().is_none());
    assert!(
        server.client().await.is_err(),
        "the stopped server still answers"
    );
    server.start_again().await?;

    assert_eq!(server.port(), port);
    let rows = server
        .client()
        .await?
        .query("SELECT id, state FROM orders ORDER BY id", &[])
        .await?;
    let rows: Vec<(i32, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(rows, [(1, "paid".to_owned()), (2, "reserved".to_owned())]);
    Ok(())
}

#[tokio::test]
async fn postgres_kill_and_start_again_recover_committed_rows() -> anyhow::Result<()> {
    let mut server = PostgresServer::start().await?;
    let client = server.client().await?;
    // The server runs with synchronous_commit=off; this session waits for its WAL writes.
    client
        .batch_execute(
            "SET synchronous_commit = on;
             CREATE TABLE orders (id int PRIMARY KEY);
             INSERT INTO orders SELECT generate_series(1, 100);",
        )
        .await?;
    // An open session, so a backend exists when the server is killed.
    let idle = server.client().await?;

    server.kill();
    assert!(idle.simple_query("SELECT 1").await.is_err());
    server.start_again().await?;

    let row = server
        .client()
        .await?
        .query_one("SELECT count(*) FROM orders", &[])
        .await?;
    assert_eq!(row.get::<_, i64>(0), 100);
    Ok(())
}

#[tokio::test]
async fn servers_start_in_parallel_on_different_ports() -> anyhow::Result<()> {
    let (redis_a, redis_b, postgres_a, postgres_b) = tokio::try_join!(
        RedisServer::start(),
        RedisServer::start(),
        PostgresServer::start(),
        PostgresServer::start(),
    )?;
    let mut ports = vec![
        redis_a.port(),
        redis_b.port(),
        postgres_a.port(),
        postgres_b.port(),
    ];
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "ports: {ports:?}");

    for redis in [&redis_a, &redis_b] {
        let pong: String = redis::cmd("PING")
            .query_async(&mut redis.connection().await?)
            .await?;
        assert_eq!(pong, "PONG");
    }
    for postgres in [&postgres_a, &postgres_b] {
        let row = postgres.client().await?.query_one("SELECT 1", &[]).await?;
        assert_eq!(row.get::<_, i32>(0), 1);
    }
    Ok(())
}

#[tokio::test]
async fn a_cluster_starts_with_three_primaries_and_replicas() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let mut ports = cluster.ports();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6, "ports: {ports:?}");
    assert_eq!(
        cluster.seeds()[0],
        format!("redis://127.0.0.1:{}/", cluster.ports()[0])
    );

    let primaries = cluster.primaries().await?;
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    for primary in &primaries {
        assert_eq!(cluster.role(primary.port).await?, Role::Primary);
        assert!(primary.pid.is_some(), "{primary:?}");
    }
    let replicas: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|port| primaries.iter().all(|primary| primary.port != *port))
        .collect();
    let mut replicated = Vec::new();
    for replica in replicas {
        match cluster.role(replica).await? {
            Role::Replica { of } => replicated.push(of),
            Role::Primary => panic!("{replica} is a primary without slots"),
        }
    }
    replicated.sort_unstable();
    let mut primary_ports: Vec<u16> = primaries.iter().map(|primary| primary.port).collect();
    primary_ports.sort_unstable();
    assert_eq!(replicated, primary_ports, "each primary has one replica");

    // The sales' hash tags spread their keys over the primaries: the first sales already
    // reach all three.
    let mut keys: Vec<(u16, String)> = Vec::new();
    for sale in 1..=20 {
        let key = format!("{{s:{sale}}}:stock");
        let owner = cluster.primary_of(&key).await?.port;
        if keys.iter().all(|(port, _)| *port != owner) {
            keys.push((owner, key));
        }
    }
    let mut owners: Vec<u16> = keys.iter().map(|(port, _)| *port).collect();
    owners.sort_unstable();
    assert_eq!(owners, primary_ports, "keys: {keys:?}");
    // A sale's keys share its hash tag, so one primary serves them all.
    assert_eq!(
        cluster.primary_of("{s:1}:stock").await?,
        cluster.primary_of("{s:1}:fence").await?
    );

    let mut redis = cluster.connection().await?;
    cluster.reset_stats().await?;
    assert_eq!(
        cluster.total_calls().await?,
        0,
        "nothing was sent since the reset"
    );
    for (units, (_, key)) in keys.iter().enumerate() {
        let () = redis.set(key, units + 10).await?;
    }
    for (units, (_, key)) in keys.iter().enumerate() {
        let stock: usize = redis.get(key).await?;
        assert_eq!(stock, units + 10, "{key}");
    }
    let stats = cluster.command_stats().await?;
    assert_eq!(stats.get("set"), Some(&3), "{stats:?}");
    assert_eq!(stats.get("get"), Some(&3), "{stats:?}");
    assert_eq!(cluster.total_calls().await?, 6, "{stats:?}");
    Ok(())
}

#[tokio::test]
async fn a_killed_primary_is_replaced_by_its_replica() -> anyhow::Result<()> {
    let mut cluster = RedisCluster::start().await?;
    let key = "{s:1}:stock";
    let old = cluster.primary_of(key).await?;
    let mut client = cluster.connection().await?;
    // On the primary itself: WAIT returns once the replica has this connection's writes too.
    let mut primary = cluster.node_connection(old.port).await?;
    let () = primary.set(key, 42).await?;
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut primary)
        .await?;
    assert_eq!(replicas, 1, "the replica acknowledged the write");
    let other = cluster.primary_of("{s:2}:stock").await?;
    assert_ne!(other.port, old.port);

    cluster.kill(old.port)?;
    assert_eq!(cluster.pid(old.port), None);
    // While the shard fails over, another sale's shard keeps taking writes.
    let mut other_primary = cluster.node_connection(other.port).await?;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut writes = 0;
    let took = {
        let failover = cluster.wait_failover(key, old.port);
        tokio::pin!(failover);
        loop {
            tokio::select! {
                took = &mut failover => break took?,
                _ = ticker.tick() => {}
            }
            let _: u32 = other_primary.incr("{s:2}:sold", 1).await?;
            writes += 1;
        }
    };
    let new = cluster.primary_of(key).await?;
    println!(
        "failover of {} to {} took {took:?} (cluster-node-timeout {} ms)",
        old.port,
        new.port,
        flash_tests::redis_cluster::NODE_TIMEOUT_MS
    );
    assert_ne!(new.port, old.port);
    assert!(new.pid.is_some(), "{new:?}");
    assert_eq!(cluster.role(new.port).await?, Role::Primary);

    let direct: u32 = cluster.node_connection(new.port).await?.get(key).await?;
    assert_eq!(direct, 42, "the promoted replica has the write");
    let followed: u32 = client.get(key).await?;
    assert_eq!(followed, 42, "the cluster client found the new primary");
    let sold: u32 = client.get("{s:2}:sold").await?;
    assert!(
        writes > 10,
        "{writes} writes to the other shard during the failover"
    );
    assert_eq!(sold, writes, "every write to the other shard was answered");

    cluster.restart(old.port).await?;
    let rejoined = cluster.wait_healthy().await?;
    println!("{} rejoined in {rejoined:?}", old.port);
    assert_eq!(
        cluster.role(old.port).await?,
        Role::Replica { of: new.port }
    );
    assert_eq!(cluster.primary_of(key).await?.port, new.port);
    let mut replica = cluster.node_connection(old.port).await?;
    // A replica answers reads of its primary's slots after READONLY (else with MOVED).
    let () = redis::cmd("READONLY").query_async(&mut replica).await?;
    let replica_has: u32 = replica.get(key).await?;
    assert_eq!(
        replica_has, 42,
        "the old primary is in sync with the new one"
    );
    Ok(())
}
