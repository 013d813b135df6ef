//! What a crowd run reports, built from the merged tally: per bot kind what it sent, what stopped
//! it and the units it got; the honest users' endings; latency percentiles per route (humans and
//! bots apart); and a summary. Printed as a table for humans ([`Report::table`]) and as JSON lines
//! ([`Report::json_lines`]): one object per kind (`"kind": "human"` for the honest users), one per
//! route, and the summary LAST.

use std::{collections::BTreeMap, fmt::Write, time::Duration};

use serde::{Serialize, Serializer};
use serde_json::json;

use super::{
    bots::BotKind,
    config::CrowdConfig,
    roster::Role,
    tally::{units_of, Route, Side, Tally},
};

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub humans: KindReport,
    /// One per bot kind in the crowd, in [`BotKind::ALL`] order.
    pub kinds: Vec<KindReport>,
    pub routes: Vec<RouteLatency>,
    pub summary: Summary,
}

/// One kind of sender: the honest users or a bot kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// `human` or the bot kind.
    pub kind: Kind,
    /// Crowd positions of this kind.
    pub actors: u64,
    /// Identities (uids) they played: a swarm bot plays many.
    pub identities: u64,
    /// Requests sent.
    pub sent: u64,
    /// Every answer, keyed `route answer-key` (`buy 403 pass_token_spent`).
    pub answers: BTreeMap<String, u64>,
    /// The answers that refused a request (not 2xx, or no answer), by answer key.
    pub stopped_by: BTreeMap<String, u64>,
    /// Buys answered `200 reserved`.
    pub units: u64,
    /// Units beyond what one honest purchase per identity gives (0 or 1 per identity).
    pub extra_units: u64,
    /// Most units one identity of this kind got.
    pub max_units_per_identity: u64,
    /// How plays ended early or, for honest users, how each ended.
    pub endings: BTreeMap<String, u64>,
}

/// `human` or a bot kind, serialized as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind(pub Role);

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self.0 {
            Role::Human => "human",
            Role::Bot(kind) => kind.as_str(),
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Latency percentiles of one route, in µs (`solve` is the client's own proof of work).
#[derive(Debug, Clone, Serialize)]
pub struct RouteLatency {
    pub route: &'static str,
    pub who: &'static str,
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// The run in one object.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub users: usize,
    pub humans: u64,
    pub bots: u64,
    pub sale: i64,
    pub seed: u64,
    pub run: String,
    /// Every unit sold in this run: honest users' and bots'.
    pub units_sold: u64,
    pub human_units: u64,
    /// Units bots got beyond one honest purchase per identity: must be 0.
    pub bot_units: u64,
    /// Every unit bots got, their honest purchases included.
    pub bot_units_total: u64,
    /// Most units any identity got: must be at most 1.
    pub max_units_per_identity: u64,
    /// What must not happen and did: a kind with `extra_units`, an identity with two units.
    /// Empty in a sound run.
    pub violations: Vec<String>,
    pub requests: u64,
    /// Requests that got no answer (timeouts, broken connections).
    pub no_answer: u64,
    pub image_required: u64,
    /// Proof-of-work difficulty → challenges seen with it.
    pub difficulties: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// Buy requests per second, over the whole run.
    pub buy_rps: f64,
    /// Requests per second, over the whole run.
    pub rps: f64,
}

impl Report {
    pub fn new(config: &CrowdConfig, roster: &[Role], tally: Tally, elapsed: Duration) -> Self {
        let actors = |role: Role| roster.iter().filter(|r| **r == role).count() as u64;
        let kind = |role: Role| kind_report(&tally, role, actors(role));
        let humans = kind(Role::Human);
        let kinds: Vec<KindReport> = BotKind::ALL
            .into_iter()
            .map(Role::Bot)
            .filter(|role| actors(*role) > 0)
            .map(kind)
            .collect();
        let routes = routes(&tally);
        let requests: u64 = tally.answers.values().sum();
        let buys: u64 = tally
            .answers
            .iter()
            .filter(|((_, route, _), _)| *route == Route::Buy)
            .map(|(_, n)| n)
            .sum();
        let no_answer: u64 = tally
            .answers
            .iter()
            .filter(|((_, _, key), _)| key.starts_with("no_answer"))
            .map(|(_, n)| n)
            .sum();
        let bot_units_total = kinds.iter().map(|k| k.units).sum::<u64>();
        let violations = std::iter::once(&humans)
            .chain(&kinds)
            .flat_map(|k| {
                let name = k.kind.as_str();
                let extra = (k.extra_units > 0)
                    .then(|| format!("{name}: {} units beyond one honest purchase", k.extra_units));
                let doubled = (k.max_units_per_identity > 1)
                    .then(|| format!("{name}: an identity got {} units", k.max_units_per_identity));
                extra.into_iter().chain(doubled)
            })
            .collect();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let summary = Summary {
            users: config.users,
            humans: humans.actors,
            bots: kinds.iter().map(|k| k.actors).sum(),
            sale: config.sale,
            seed: config.seed,
            run: config.run_id.clone(),
            units_sold: humans.units + bot_units_total,
            human_units: humans.units,
            bot_units: kinds.iter().map(|k| k.extra_units).sum(),
            bot_units_total,
            max_units_per_identity: tally.holdings.values().map(|h| h.units).max().unwrap_or(0),
            violations,
            requests,
            no_answer,
            image_required: tally.image_required,
            difficulties: tally
                .difficulties
                .iter()
                .map(|(d, n)| (d.to_string(), *n))
                .collect(),
            elapsed_s: elapsed.as_secs_f64(),
            buy_rps: buys as f64 / secs,
            rps: requests as f64 / secs,
        };
        Self {
            humans,
            kinds,
            routes,
            summary,
        }
    }

    /// The report of bot `kind`, if the crowd had any.
    pub fn kind(&self, kind: BotKind) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.kind == Kind(Role::Bot(kind)))
    }

    /// JSON lines: kinds (humans first), routes, then the summary as the LAST line.
    pub fn json_lines(&self) -> Vec<String> {
        std::iter::once(line(&self.humans))
            .chain(self.kinds.iter().map(line))
            .chain(self.routes.iter().map(line))
            .chain(std::iter::once(line(&self.summary)))
            .collect()
    }

    /// A table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<15} {:>6} {:>6} {:>7} {:>6} {:>6}  answers (route status detail: count)",
            "kind", "actors", "ids", "sent", "units", "extra"
        );
        for k in std::iter::once(&self.humans).chain(&self.kinds) {
            let answers: Vec<String> = k.answers.iter().map(|(a, n)| format!("{a}: {n}")).collect();
            let _ = writeln!(
                out,
                "{:<15} {:>6} {:>6} {:>7} {:>6} {:>6}  {}",
                k.kind.as_str(),
                k.actors,
                k.identities,
                k.sent,
                k.units,
                k.extra_units,
                answers.join(", ")
            );
            if !k.endings.is_empty() && k.kind.0 == Role::Human {
                let endings: Vec<String> =
                    k.endings.iter().map(|(e, n)| format!("{e}: {n}")).collect();
                let _ = writeln!(out, "{:<15} endings: {}", "", endings.join(", "));
            }
        }
        let _ = writeln!(
            out,
            "\n{:<8} {:<6} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "route", "who", "count", "p50_us", "p99_us", "p999_us", "max_us"
        );
        for r in &self.routes {
            let _ = writeln!(
                out,
                "{:<8} {:<6} {:>7} {:>9} {:>9} {:>9} {:>9}",
                r.route, r.who, r.count, r.p50_us, r.p99_us, r.p999_us, r.max_us
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\n{} users ({} bots) in {:.2} s: {} units sold ({} to humans, {} to bots, {} beyond \
             one per identity), {} requests ({:.0}/s), {:.0} buys/s, {} unanswered, {} image \
             captchas, difficulties {:?}",
            s.users,
            s.bots,
            s.elapsed_s,
            s.units_sold,
            s.human_units,
            s.bot_units_total,
            s.bot_units,
            s.requests,
            s.rps,
            s.buy_rps,
            s.no_answer,
            s.image_required,
            s.difficulties
        );
        for violation in &s.violations {
            let _ = writeln!(out, "VIOLATION {violation}");
        }
        out
    }
}

/// One JSON line; a part that cannot be serialized says so in its line.
fn line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        json!({"error": "unserializable", "message": e.to_string()}).to_string()
    })
}

fn kind_report(tally: &Tally, role: Role, actors: u64) -> KindReport {
    let mut answers = BTreeMap::new();
    for ((r, route, key), n) in &tally.answers {
        if *r == role {
            *answers
                .entry(format!("{} {key}", route.as_str()))
                .or_default() += n;
        }
    }
    let stopped_by = tally
        .by_key(role)
        .into_iter()
        .filter(|(key, _)| !key.starts_with('2'))
        .collect();
    let (units, extra_units) = units_of(&tally.holdings, role);
    KindReport {
        kind: Kind(role),
        actors,
        identities: tally.identities.get(&role).copied().unwrap_or(0),
        sent: answers.values().sum(),
        answers,
        stopped_by,
        units,
        extra_units,
        max_units_per_identity: tally
            .holdings
            .values()
            .filter(|h| h.role == role)
            .map(|h| h.units)
            .max()
            .unwrap_or(0),
        endings: tally
            .endings
            .iter()
            .filter(|((r, _), _)| *r == role)
            .map(|((_, e), n)| (e.clone(), *n))
            .collect(),
    }
}

fn routes(tally: &Tally) -> Vec<RouteLatency> {
    let mut out = Vec::new();
    for side in [Side::Human, Side::Bot] {
        for route in Route::ALL {
            let Some(h) = tally.latency.get(&(side, route)) else {
                continue;
            };
            out.push(RouteLatency {
                route: route.as_str(),
                who: side.as_str(),
                count: h.len(),
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                max_us: h.max(),
            });
        }
    }
    out
}
