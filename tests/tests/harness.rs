//! Proves the test harness itself: real Redis and PostgreSQL servers start on free ports, answer,
//! count commands, keep their data across a crash or a stop, and several start at once.

use std::time::Duration;

use flash_tests::postgres_server::PostgresServer;
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
