//! `bench`: the benchmark run by `./deploy/bench` (see `flash_tests::bench`). Starts the stack
//! from the release binaries next to this one, runs every phase with its baseline in the same
//! run, prints one JSON object per phase, a table, and the summary object as the last line.
//! `--redis cluster` runs the phases that depend on Redis on one server and then on a six-node
//! cluster, then the cluster's own: `wait_replicas` 0 against 1, and failovers.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use clap::ValueEnum;
use flash_tests::{
    bench::{
        compare, dtm, durability, failover, identity, loss, memory, parts, phases, report, system,
        world::{origin_options, World},
    },
    postgres_server::PostgresServer,
    redis_cluster::RedisCluster,
};

/// The Redis the bench runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RedisMode {
    /// Every phase on one redis-server.
    Single,
    /// The Redis rows on one server and on a six-node cluster side by side, `wait_replicas` 0
    /// against 1, and failovers.
    Cluster,
}

/// A phase that can run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    /// The buy path under HS256, RS256 and ES256 user tokens (`bench::identity`).
    Identity,
    /// Beside dtm's own flash-sale bench, and recovery under dtm (`bench::dtm`).
    Dtm,
}

/// Buyers per round of the identity phase.
const IDENTITY_BUYERS: usize = 1000;

#[derive(Debug, Parser)]
struct Args {
    /// The Redis the stack runs on.
    #[arg(long, value_enum, default_value_t = RedisMode::Single)]
    redis: RedisMode,
    /// Failovers measured with `--redis cluster` (the median is reported).
    #[arg(long, default_value_t = 3)]
    failovers: usize,
    /// Users in the crowd phase (20% bots), for 100 units.
    #[arg(long, default_value_t = 100_000)]
    crowd_users: usize,
    /// Distinct clients (IPs and uids) sent to one edge in the memory phase.
    #[arg(long, default_value_t = 1_000_000)]
    clients: usize,
    /// Buyers in the live phase (all winners), then half as many losing duplicates.
    #[arg(long, default_value_t = 3000)]
    winners: usize,
    /// Rounds of each side-by-side measurement (the medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each closed-loop measurement.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Run this phase alone (the others are skipped and no summary is printed).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Record CPU profiles (perf) of the first sold-out round and of the live winners' loop into
    /// this folder; `deploy/profile` runs this and draws the flame graphs.
    #[arg(long)]
    profile: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir: PathBuf = std::env::current_exe()?
        .parent()
        .context("binary folder")?
        .to_path_buf();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let machine = system::machine().await;
    report::line(&serde_json::json!({"phase": "machine", "machine": machine}));
    if args.redis == RedisMode::Cluster {
        return on_cluster(&args, &bin_dir, &repo, machine).await;
    }
    let mut world = World::start(&bin_dir, &repo).await?;
    world.profile_dir = args.profile.clone();
    if args.only == Some(Only::Identity) {
        report::line(&identity::identity(&world, args.rounds, IDENTITY_BUYERS).await?);
        return Ok(());
    }
    if args.only == Some(Only::Dtm) {
        flash_tests::dtm_server::installed()?;
        let (peer, recovery) = dtm_phases(&world, &args).await?;
        println!("{}", dtm::table(&peer));
        println!("{}", dtm::recovery_table(&recovery));
        return Ok(());
    }

    eprintln!("bench: sold-out path vs nginx return 200 ...");
    let sold_out = phases::sold_out(&world, args.rounds, args.seconds).await?;
    report::line(&sold_out);
    eprintln!("bench: live path vs redis-benchmark ...");
    let live = phases::live(&world, args.winners).await?;
    report::line(&live);
    eprintln!("bench: the buy path under HS256, RS256 and ES256 user tokens ...");
    let identity = identity::identity(&world, args.rounds, IDENTITY_BUYERS).await?;
    report::line(&identity);
    eprintln!("bench: status JSON through nginx's cache vs the edge alone ...");
    let status_cache = parts::status_cache(&world, args.rounds, args.seconds).await?;
    report::line(&status_cache);
    eprintln!("bench: a lapsed hold's unit back to a buyer ...");
    let hold_return = parts::hold_return(&world, args.rounds).await?;
    report::line(&hold_return);
    eprintln!("bench: sold-out propagation ...");
    let propagation = phases::propagation(&world).await?;
    report::line(&propagation);
    eprintln!("bench: crowd of {} ...", args.crowd_users);
    let (crowd, crowd_report) = phases::crowd(&world, args.crowd_users).await?;
    for kind in &crowd_report.kinds {
        report::line(&serde_json::json!({"phase": "bots", "kind": kind}));
    }
    for route in &crowd_report.routes {
        report::line(&serde_json::json!({"phase": "crowd_latency", "route": route}));
    }
    report::line(&crowd);
    eprintln!("bench: memory after {} clients ...", args.clients);
    let memory = memory::memory(&world, args.clients).await?;
    report::line(&memory);
    eprintln!("bench: recovery ...");
    let recovery = phases::recovery(&mut world, 600).await?;
    report::line(&recovery);
    // Before the Redis phases, on a stack in its steady state. After a Redis restart an edge's
    // event stream resubscribes (its backoff up to 5 s) after its limits are back: a sale sold in
    // between is flagged at that edge by the origin's answer to its next real buy, which the
    // sold-out probe (a pass the edge refuses) never makes.
    let dtm = match flash_tests::dtm_server::installed() {
        Ok(()) => Some(dtm_phases(&world, &args).await?),
        Err(error) => {
            eprintln!("bench: the phases beside dtm are skipped: {error:#}");
            report::line(
                &serde_json::json!({"phase": "dtm_peer", "skipped": format!("{error:#}")}),
            );
            None
        }
    };
    eprintln!("bench: Redis losing data, and away ...");
    let redis_loss = loss::redis_loss(&mut world, args.rounds).await?;
    report::line(&redis_loss);
    // Last: its tens of thousands of orders keep PostgreSQL busy (autovacuum, checkpoints) for a
    // while after, which would slow the phases after it.
    eprintln!("bench: the origin alone vs redis-benchmark ...");
    let origin_alone = parts::origin_alone(&world, args.rounds, args.seconds).await?;
    report::line(&origin_alone);

    let results = report::Results {
        machine,
        sold_out,
        live,
        origin_alone,
        status_cache,
        hold_return,
        propagation,
        crowd,
        memory,
        recovery,
        redis_loss,
        identity,
        dtm,
    };
    let summary = report::summary(&results);
    println!("{}", report::table(&summary, &results));
    println!("{}", report::cpu_table(&results.sold_out, &results.live));
    if let Some((peer, recovery)) = &results.dtm {
        println!("{}", dtm::table(peer));
        println!("{}", dtm::recovery_table(recovery));
    }
    println!("{summary}");
    Ok(())
}

/// Beside dtm's own flash-sale bench, then recovery under dtm; each phase's line printed.
async fn dtm_phases(
    world: &World,
    args: &Args,
) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    eprintln!("bench: beside dtm's own flash-sale bench ...");
    let mut peers = dtm::Peers::start(world).await?;
    let peer = dtm::peer(world, &peers, args.rounds, args.seconds).await?;
    report::line(&peer);
    eprintln!("bench: recovery under dtm (timeout_to_fail 35 s and 3 s) ...");
    let recovery = dtm::recovery(world, &mut peers, args.rounds).await?;
    report::line(&recovery);
    Ok((peer, recovery))
}

/// `--redis cluster`: the Redis rows on one server, then on a cluster; `wait_replicas`; failovers.
async fn on_cluster(
    args: &Args,
    bin_dir: &Path,
    repo: &Path,
    machine: serde_json::Value,
) -> anyhow::Result<()> {
    let sizes = compare::Sizes {
        rounds: args.rounds,
        seconds: args.seconds,
        winners: args.winners,
        crowd_users: args.crowd_users,
    };
    let single = {
        let world = World::start(bin_dir, repo).await?;
        compare::rows(&world, sizes).await?
    };
    report::line(&single);
    let (cluster, postgres) = tokio::try_join!(RedisCluster::start(), PostgresServer::start())?;
    let mut world = World::on(cluster, postgres, bin_dir, repo, origin_options()).await?;
    let clustered = compare::rows(&world, sizes).await?;
    report::line(&clustered);
    eprintln!("bench: wait_replicas 0 against 1 ...");
    let waits = durability::wait_replicas(&mut world, args.winners, args.rounds).await?;
    report::line(&waits);
    let failovers = failover::failovers(&mut world, args.failovers).await?;
    report::line(&failovers);

    println!("{}", compare::table(&single, &clustered));
    let num = |loop_: &str, key: &str| waits[loop_][key].as_f64().unwrap_or(f64::NAN);
    println!(
        "wait_replicas 0 -> 1: winners/s {:.0} -> {:.0}, winner p99 {:.0} -> {:.0} µs, \
         round trips per winner {:.2} -> {:.2}; WAITs acked {}, short {}",
        num("wait_0", "winners_per_second"),
        num("wait_1", "winners_per_second"),
        num("wait_0", "p99_us"),
        num("wait_1", "p99_us"),
        num("wait_0", "redis_round_trips_per_winner"),
        num("wait_1", "redis_round_trips_per_winner"),
        waits["waits_acked"],
        waits["waits_short"],
    );
    println!(
        "failover (median of {}): buys of the killed primary's sale failing {:.2} s, \
         promotion {:.2} s; at most {} reserved without an order, {} heals, drift {}, \
         {} failed answers on the other primary's sale",
        failovers["runs"],
        failovers["victim_failing_s"].as_f64().unwrap_or(f64::NAN),
        failovers["failover_s"].as_f64().unwrap_or(f64::NAN),
        failovers["reserved_without_order_max"],
        failovers["heals_max"],
        failovers["drift_max"],
        failovers["other_failed_answers_max"],
    );
    let summary = serde_json::json!({
        "summary": true,
        "redis": "cluster",
        "machine": machine,
        "rows": compare::summary(&single, &clustered),
        "wait_replicas": {"wait_0": waits["wait_0"], "wait_1": waits["wait_1"],
            "winners_ratio_1_vs_0": waits["winners_ratio_1_vs_0"]},
        "failover": {
            "victim_failing_s": failovers["victim_failing_s"],
            "failover_s": failovers["failover_s"],
            "reserved_without_order_max": failovers["reserved_without_order_max"],
            "heals_max": failovers["heals_max"],
            "drift_max": failovers["drift_max"],
            "other_failed_answers_max": failovers["other_failed_answers_max"],
        },
    });
    println!("{summary}");
    Ok(())
}
