//! `bench --redis cluster`: the rows that depend on Redis (sold out, losers, winners, the crowd)
//! measured on one Redis server and then on a six-node Redis Cluster in the same run, with the
//! Redis round trips of each attempt, and a table of both side by side with their ratio.

use serde_json::{json, Value};

use super::{phases, world::World};
use crate::redis_under_test::RedisUnderTest;

/// How much each row measures.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub rounds: usize,
    pub seconds: f64,
    pub winners: usize,
    pub crowd_users: usize,
}

/// The sold-out, live (winners, then losers) and crowd phases on `world`'s Redis: one object
/// naming the Redis (`single` or `cluster`) with each phase's object.
pub async fn rows<R: RedisUnderTest>(world: &World<R>, sizes: Sizes) -> anyhow::Result<Value> {
    let mode = world.stack.redis.mode();
    eprintln!("bench: sold-out path on {mode} ...");
    let sold_out = phases::sold_out(world, sizes.rounds, sizes.seconds).await?;
    eprintln!("bench: winners and losers on {mode} ...");
    let live = phases::live(world, sizes.winners).await?;
    eprintln!("bench: crowd of {} on {mode} ...", sizes.crowd_users);
    let (crowd, _) = phases::crowd(world, sizes.crowd_users).await?;
    Ok(json!({
        "phase": "redis_rows",
        "redis": mode,
        "sold_out": sold_out,
        "live": live,
        "crowd": crowd,
    }))
}

/// One figure of a row: its name, and where it is in a [`rows`] object.
struct Figure {
    name: &'static str,
    get: fn(&Value) -> f64,
}

fn at(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, key| &v[*key])
        .as_f64()
        .unwrap_or(f64::NAN)
}

const FIGURES: [Figure; 14] = [
    Figure {
        name: "sold out: attempts/s through nginx",
        get: |v| at(v, &["sold_out", "stack_rps"]),
    },
    Figure {
        name: "sold out: CPU µs per attempt",
        get: |v| at(v, &["sold_out", "cpu_us_per_attempt", "total"]),
    },
    Figure {
        name: "sold out: Redis round trips per attempt",
        get: |v| at(v, &["sold_out", "redis_commands"]) / at(v, &["sold_out", "attempts"]),
    },
    Figure {
        name: "losers/s",
        get: |v| at(v, &["live", "loser_rps"]),
    },
    Figure {
        name: "loser p99 µs",
        get: |v| at(v, &["live", "loser_latency", "p99_us"]),
    },
    Figure {
        name: "loser: CPU µs per attempt",
        get: |v| at(v, &["live", "loser_cpu_us_per_attempt", "total"]),
    },
    Figure {
        name: "loser: Redis round trips per attempt",
        get: |v| at(v, &["live", "redis_cmds_per_loser"]),
    },
    Figure {
        name: "winners/s",
        get: |v| at(v, &["live", "live_rps"]),
    },
    Figure {
        name: "winner p99 µs",
        get: |v| at(v, &["live", "latency", "p99_us"]),
    },
    Figure {
        name: "winner: CPU µs per attempt",
        get: |v| at(v, &["live", "cpu_us_per_attempt", "total"]),
    },
    Figure {
        name: "winner: Redis round trips per attempt",
        get: |v| at(v, &["live", "redis_cmds_per_winner"]),
    },
    Figure {
        name: "redis-benchmark EVALSHA reserve/s",
        get: |v| at(v, &["live", "redis_benchmark_evalsha_reserve_rps"]),
    },
    Figure {
        name: "crowd: requests/s through nginx",
        get: |v| at(v, &["crowd", "crowd_rps"]),
    },
    Figure {
        name: "crowd: drift after",
        get: |v| at(v, &["crowd", "drift"]),
    },
];

/// The rows of one server and of the cluster side by side, with cluster / single.
pub fn table(single: &Value, cluster: &Value) -> String {
    let mut out = format!(
        "\n{:<42} {:>12} {:>12} {:>9}\n",
        "on Redis", "single", "cluster", "ratio"
    );
    for figure in &FIGURES {
        let (s, c) = ((figure.get)(single), (figure.get)(cluster));
        out.push_str(&format!(
            "{:<42} {:>12.2} {:>12.2} {:>9.2}\n",
            figure.name,
            s,
            c,
            c / s
        ));
    }
    out
}

/// The summary's figures of both rows: each figure's single and cluster values and ratio.
pub fn summary(single: &Value, cluster: &Value) -> Value {
    let figures: serde_json::Map<String, Value> = FIGURES
        .iter()
        .map(|figure| {
            let (s, c) = ((figure.get)(single), (figure.get)(cluster));
            (
                figure.name.to_string(),
                json!({"single": s, "cluster": c, "ratio": c / s}),
            )
        })
        .collect();
    Value::Object(figures)
}
