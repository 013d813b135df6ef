//! The benchmark's report: each phase's JSON object on its own line (for machines) and two tables
//! (for people: the figures against their targets, and the CPU each process spends per attempt
//! of each path), then the summary object with the keys the issue names, as the LAST line.

use serde_json::{json, Value};

/// Prints one phase's result: a line of JSON.
pub fn line(value: &Value) {
    println!("{value}");
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// Every phase's result object, as printed on its line.
pub struct Results {
    pub machine: Value,
    pub sold_out: Value,
    pub live: Value,
    pub origin_alone: Value,
    pub status_cache: Value,
    pub hold_return: Value,
    pub propagation: Value,
    pub crowd: Value,
    pub memory: Value,
    pub recovery: Value,
    pub redis_loss: Value,
    pub identity: Value,
    /// The peer phase beside dtm's bench and recovery under dtm (`None`: dtm is not installed).
    pub dtm: Option<(Value, Value)>,
}

/// The summary object, from the phases' results.
pub fn summary(results: &Results) -> Value {
    let drift = results.crowd["drift"]
        .as_i64()
        .unwrap_or(i64::MAX)
        .abs()
        .max(results.recovery["drift"].as_i64().unwrap_or(i64::MAX).abs());
    json!({
        "summary": true,
        "machine": results.machine,
        "soldout_ratio_vs_nginx": num(&results.sold_out, "ratio_vs_nginx"),
        "edge_soldout_ratio_vs_hyper": num(&results.sold_out, "edge_ratio_vs_hyper"),
        "live_ratio_vs_redis": num(&results.live, "ratio_vs_redis"),
        "origin_ratio_vs_redis": num(&results.origin_alone, "ratio_vs_redis"),
        "status_cached_ratio_vs_edge": num(&results.status_cache, "ratio_cached_vs_edge"),
        "status_edge_rps_behind_nginx": num(&results.status_cache, "edge_requests_per_second_behind_nginx"),
        "hold_expiry_to_bought_ms": num(&results.hold_return, "expiry_to_bought_through_nginx_ms"),
        "redis_cmds_per_attempt": {
            "loser": num(&results.live, "redis_cmds_per_loser"),
            "winner": num(&results.live, "redis_cmds_per_winner"),
            "soldout": num(&results.sold_out, "redis_commands") / num(&results.sold_out, "attempts").max(1.0),
        },
        "soldout_origin_requests": num(&results.sold_out, "origin_requests"),
        "origin_requests_per_unit": num(&results.crowd, "origin_requests_per_unit"),
        "propagation_ms": num(&results.propagation, "median_ms"),
        "recovery_seconds": num(&results.recovery, "recovery_seconds"),
        "heal_after_lost_tail_ms": num(&results.redis_loss, "lost_tail_restart_to_healed_ms"),
        "heal_after_empty_restart_ms": num(&results.redis_loss, "empty_restart_to_healed_ms"),
        "attempts_per_unit_lost": num(&results.redis_loss, "lost_tail_attempts_per_unit_lost"),
        "redis_outage_503_beyond_ms": num(&results.redis_loss, "outage_503_beyond_ms"),
        "edge_rss_mb_1m_clients": num(&results.memory, "edge_peak_rss_mb"),
        "origin_peak_rss_mb": num(&results.memory, "origin_peak_rss_mb"),
        "bot_units": results.crowd["bot_units"],
        "drift": drift,
        "identity_cpu_us_per_buy": {
            "hs256": results.identity["hs256"]["cpu_us_per_buy"],
            "rs256": results.identity["rs256"]["cpu_us_per_buy"],
            "es256": results.identity["es256"]["cpu_us_per_buy"],
        },
        "jwks_requests_during_identity": results.identity["provider_requests"],
        "vs_dtm": vs_dtm(results.dtm.as_ref()),
    })
}

/// The summary's ratios to dtm's own flash-sale bench (req/s of each of our loops over
/// `benchFlashSales`'s, and dtm's CPU per attempt over ours), the dtm coordinator's cost per
/// winner, and recovery under dtm; `null` when dtm did not run.
fn vs_dtm(dtm: Option<&(Value, Value)>) -> Value {
    let Some((peer, recovery)) = dtm else {
        return Value::Null;
    };
    let ratio = |key: &str| num(&peer[key], "rps_ratio_vs_dtm");
    let cpu = |key: &str| 1.0 / num(&peer[key], "cpu_ratio_vs_dtm");
    let crash = |key: &str| num(&recovery[key]["crash_after_reserve"], "back_check_seconds");
    json!({
        "vs_dtm_soldout_through_nginx_rps": ratio("stack_sold_out"),
        "vs_dtm_origin_soldout_rps": ratio("origin_sold_out"),
        "vs_dtm_embedded_winners_rps": ratio("embedded_winners"),
        "vs_dtm_dtm_winners_rps": ratio("dtm_winners"),
        "vs_dtm_soldout_through_nginx_cpu": cpu("stack_sold_out"),
        "vs_dtm_origin_soldout_cpu": cpu("origin_sold_out"),
        "vs_dtm_embedded_winners_cpu": cpu("embedded_winners"),
        "vs_dtm_dtm_winners_cpu": cpu("dtm_winners"),
        "dtm_flash_sales_rps": num(&peer["dtm_flash_sales"], "rps"),
        "dtm_coordinator_extra_cpu_us_per_winner": num(&peer["winner_cost"], "dtm_extra_cpu_us"),
        "dtm_recovery_quiet_seconds": {
            "dtm_default_35s": num(&recovery["dtm_default_35s"], "quiet_seconds"),
            "recovery_timeout_3s": num(&recovery["recovery_timeout_3s"], "quiet_seconds"),
        },
        "dtm_back_check_after_crash_seconds": {
            "dtm_default_35s": crash("dtm_default_35s"),
            "recovery_timeout_3s": crash("recovery_timeout_3s"),
        },
    })
}

/// The table for people.
pub fn table(summary: &Value, results: &Results) -> String {
    let s = summary;
    let (sold_out, live) = (&results.sold_out, &results.live);
    let r = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
    };
    // A row: its name, the figures beside its value, the summary's `key`, its target.
    let row = |name, figures, key: &str, target| (name, figures, r(&s[key]), target);
    // A row whose figures are two rates of `phase`, `a / b`.
    let rates = |name, phase: &Value, [a, b]: [&str; 2], key: &str, target| {
        let figures = format!("{:.0} / {:.0}", num(phase, a), num(phase, b));
        row(name, figures, key, target)
    };
    // A heal of the Redis loss phase: restart to healed, and noticed to healed beside it.
    let healed = |name, noticed: &str, key: &str| {
        let figures = format!("noticed to healed {:.0}", num(&results.redis_loss, noticed));
        row(name, figures, key, "-")
    };
    let rows = [
        rates(
            "sold out: stack rps / nginx return 200 rps",
            sold_out,
            ["stack_rps", "nginx_return_200_rps"],
            "soldout_ratio_vs_nginx",
            ">= 0.6",
        ),
        rates(
            "sold out: edge alone rps / bare hyper rps",
            sold_out,
            ["edge_alone_rps", "hyper_hello_rps"],
            "edge_soldout_ratio_vs_hyper",
            "-",
        ),
        rates(
            "live: buys rps / redis-benchmark EVALSHA rps",
            live,
            ["live_rps", "redis_benchmark_evalsha_reserve_rps"],
            "live_ratio_vs_redis",
            ">= 0.5",
        ),
        rates(
            "origin alone: reserves rps / redis-benchmark rps",
            &results.origin_alone,
            ["origin_reserve_rps", "redis_benchmark_evalsha_reserve_rps"],
            "origin_ratio_vs_redis",
            "-",
        ),
        rates(
            "status JSON: nginx cache rps / edge alone rps",
            &results.status_cache,
            ["nginx_cached_rps", "edge_alone_rps"],
            "status_cached_ratio_vs_edge",
            "-",
        ),
        row(
            "status JSON: edge requests/s behind nginx",
            String::new(),
            "status_edge_rps_behind_nginx",
            "~1 per edge",
        ),
        row(
            "lapsed hold: expiry to bought again, ms",
            format!(
                "edges open {:.0}",
                num(&results.hold_return, "expiry_to_edges_open_ms")
            ),
            "hold_expiry_to_bought_ms",
            "-",
        ),
        (
            "redis round trips: loser / winner / sold out",
            format!(
                "{} / {} / {}",
                r(&s["redis_cmds_per_attempt"]["loser"]),
                r(&s["redis_cmds_per_attempt"]["winner"]),
                r(&s["redis_cmds_per_attempt"]["soldout"])
            ),
            "-".into(),
            "<= 2 / 3 / 0",
        ),
        row(
            "origin requests per unit (crowd)",
            String::new(),
            "origin_requests_per_unit",
            "<= 1.5",
        ),
        row(
            "sold-out propagation, ms (median)",
            String::new(),
            "propagation_ms",
            "-",
        ),
        row(
            "recovery after origin SIGKILL, s",
            String::new(),
            "recovery_seconds",
            "<= 3",
        ),
        healed(
            "Redis lost its tail: restart to healed, ms",
            "lost_tail_notice_to_healed_ms",
            "heal_after_lost_tail_ms",
        ),
        healed(
            "Redis restarted empty: restart to healed, ms",
            "empty_notice_to_healed_ms",
            "heal_after_empty_restart_ms",
        ),
        row(
            "attempts in PostgreSQL per unit Redis lost",
            String::new(),
            "attempts_per_unit_lost",
            "small",
        ),
        row(
            "Redis away 3 s: 503s beyond the outage, ms",
            String::new(),
            "redis_outage_503_beyond_ms",
            "-",
        ),
        row(
            "edge peak RSS after 1M clients, MB",
            String::new(),
            "edge_rss_mb_1m_clients",
            "<= 150",
        ),
        ("bot units", String::new(), s["bot_units"].to_string(), "0"),
        ("drift", String::new(), s["drift"].to_string(), "0"),
    ];
    let mut out = format!(
        "{:<48} {:>22} {:>8} {:>14}\n",
        "measure", "figures", "value", "target"
    );
    for (name, figures, value, target) in rows {
        out += &format!("{name:<48} {figures:>22} {value:>8} {target:>14}\n");
    }
    out
}

/// Rows of the CPU table, in the path's order; a process a column did not measure shows `-`.
const CPU_ROWS: [&str; 10] = [
    "nginx",
    "edge_1",
    "edge_2",
    "origin",
    "redis",
    "postgres",
    "redis_benchmark",
    "client",
    "total",
    "machine_busy",
];

/// One column of a CPU table: a measured loop, where its figures are in a phase's object.
pub struct CpuColumn<'a> {
    pub title: &'static str,
    pub phase: &'a Value,
    pub per_attempt: &'static str,
    pub cpu_bound_rps: &'static str,
    pub measured_rps: &'static str,
}

/// The CPU table for people: µs of CPU per attempt (per request for the baselines) of each
/// process, per measured loop, then the rate at which that CPU would fill every core beside the
/// rate measured. `machine_busy` is the whole machine (other users included), not in `total`.
pub fn cpu_table(sold_out: &Value, live: &Value) -> String {
    let column = |title, phase, per_attempt, cpu_bound_rps, measured_rps| CpuColumn {
        title,
        phase,
        per_attempt,
        cpu_bound_rps,
        measured_rps,
    };
    let columns = [
        column(
            "sold out",
            sold_out,
            "cpu_us_per_attempt",
            "cpu_bound_rps",
            "stack_rps",
        ),
        column(
            "nginx 200",
            sold_out,
            "nginx_return_200_cpu_us_per_request",
            "nginx_return_200_cpu_bound_rps",
            "nginx_return_200_rps",
        ),
        column(
            "live win",
            live,
            "cpu_us_per_attempt",
            "cpu_bound_rps",
            "live_rps",
        ),
        column(
            "live lose",
            live,
            "loser_cpu_us_per_attempt",
            "loser_cpu_bound_rps",
            "loser_rps",
        ),
        column(
            "redis-bench",
            live,
            "redis_benchmark_cpu_us_per_request",
            "redis_benchmark_cpu_bound_rps",
            "redis_benchmark_evalsha_reserve_rps",
        ),
    ];
    cpu_table_of(&CPU_ROWS, &columns)
}

/// A CPU table: a row per process of `rows` (and `total`, `machine_busy`), a column per loop,
/// then each loop's CPU-bound rate beside its measured rate.
pub fn cpu_table_of(rows: &[&str], columns: &[CpuColumn]) -> String {
    let cell = |v: &Value, digits: usize| {
        let text = v
            .as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"));
        format!(" {text:>11}")
    };
    let mut out = format!("{:<30}", "CPU µs per attempt");
    for c in columns {
        out += &format!(" {:>11}", c.title);
    }
    out += "\n";
    for row in rows {
        out += &format!("{row:<30}");
        for c in columns {
            out += &cell(&c.phase[c.per_attempt][row], 1);
        }
        out += "\n";
    }
    out += &format!(
        "{:<30}",
        format!("cpu-bound rps ({} cores)", super::cpu::cores())
    );
    for c in columns {
        out += &cell(&c.phase[c.cpu_bound_rps], 0);
    }
    out += &format!("\n{:<30}", "measured rps");
    for c in columns {
        out += &cell(&c.phase[c.measured_rps], 0);
    }
    out + "\n"
}
