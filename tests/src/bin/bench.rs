//! `bench`: the benchmark run by `./deploy/bench` (see `flash_tests::bench`). Starts the stack
//! from the release binaries next to this one, runs every phase with its baseline in the same
//! run, prints one JSON object per phase, a table, and the summary object as the last line.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use flash_tests::bench::{loss, parts, phases, report, system, world::World};

#[derive(Debug, Parser)]
struct Args {
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
    let mut world = World::start(&bin_dir, &repo).await?;
    world.profile_dir = args.profile.clone();

    eprintln!("bench: sold-out path vs nginx return 200 ...");
    let sold_out = phases::sold_out(&world, args.rounds, args.seconds).await?;
    report::line(&sold_out);
    eprintln!("bench: live path vs redis-benchmark ...");
    let live = phases::live(&world, args.winners).await?;
    report::line(&live);
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
    let memory = phases::memory(&world, args.clients).await?;
    report::line(&memory);
    eprintln!("bench: recovery ...");
    let recovery = phases::recovery(&mut world, 600).await?;
    report::line(&recovery);
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
    };
    let summary = report::summary(&results);
    println!("{}", report::table(&summary, &results));
    println!("{}", report::cpu_table(&results.sold_out, &results.live));
    println!("{summary}");
    Ok(())
}
