//! `crowd`: a flash crowd with bots against the edge's API (the edge or nginx in front of it).
//! Parses flags into a `CrowdConfig`, plays it with `flash_tests::crowd::run`, and prints a table
//! then JSON lines (one per kind, one per route, the summary LAST); `--json-only` prints only the
//! lines. Exits 64 on bad flags. What the bots do and how units are counted: `src/crowd/mod.rs`.
#![forbid(unsafe_code)]

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use flash_tests::crowd::{self, BotKind, CrowdConfig};

#[derive(Debug, Parser)]
#[command(about = "A flash crowd with bots against the flash-sale edge")]
struct Args {
    /// The edge's (or nginx's) base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    base_url: String,
    /// The sale to buy from.
    #[arg(long)]
    sale: i64,
    /// The crowd's size, bots included.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Users (honest or bots) in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Share of the crowd that are bots.
    #[arg(long, default_value_t = 0.2)]
    bots: f64,
    /// Bot kinds, comma separated (default: all): no_pass, replayed_pass, other_uid_pass,
    /// uid_hammer, ip_swarm, forged_none, forged_key, expired, malformed.
    #[arg(long, value_delimiter = ',')]
    bot_kinds: Vec<BotKind>,
    /// HS256 secret of user JWTs (mint tokens locally).
    #[arg(long, env = "USER_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Fetch user JWTs from POST /api/dev/token (dev mode) instead of minting them.
    #[arg(long)]
    dev_token: bool,
    /// Seed of the crowd's mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The `<run>` of uids `u-<run>-<i>` (default: from the clock).
    #[arg(long)]
    run: Option<String>,
    /// Everyone but the ip_swarm comes from this client's address (no X-Forwarded-For).
    #[arg(long)]
    same_ip: bool,
    /// replayed_pass: buys fired at once with one pass token.
    #[arg(long, default_value_t = 20)]
    replay_buys: usize,
    /// uid_hammer: buys fired at once by one uid, each with a fresh pass.
    #[arg(long, default_value_t = 10)]
    hammer_buys: usize,
    /// ip_swarm: uids per swarm bot behind one address.
    #[arg(long, default_value_t = 10)]
    swarm_size: usize,
    /// Longest wait for one answer, in ms.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Print only the JSON lines.
    #[arg(long)]
    json_only: bool,
}

impl Args {
    fn config(self) -> CrowdConfig {
        let mut config = CrowdConfig::new(self.base_url, self.sale, self.jwt_secret);
        config.users = self.users;
        config.concurrency = self.concurrency;
        config.bots = self.bots;
        if !self.bot_kinds.is_empty() {
            config.bot_kinds = self.bot_kinds;
        }
        config.dev_token = self.dev_token;
        config.seed = self.seed;
        if let Some(run) = self.run {
            config.run_id = run;
        }
        config.spread_ips = !self.same_ip;
        config.replay_buys = self.replay_buys;
        config.hammer_buys = self.hammer_buys;
        config.swarm_size = self.swarm_size;
        config.request_timeout = Duration::from_millis(self.timeout_ms);
        config
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let json_only = args.json_only;
    let config = args.config();
    let problems = config.validate();
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("crowd: {problem}");
        }
        return Ok(ExitCode::from(64));
    }
    let report = crowd::run(config).await?;
    if !json_only {
        println!("{}", report.table());
    }
    for line in report.json_lines() {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
