//! The crowd's counters: every answer by sender, route and status key; latency histograms (µs)
//! per route, humans and bots apart; units per identity; how each honest user's attempt ended;
//! the captcha difficulties seen. Each worker keeps its own [`Tally`] and the run merges them at
//! the end, so counting takes no lock.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use hdrhistogram::Histogram;

use super::{client::Answer, roster::Role};

/// What a latency or a count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// `POST /api/dev/token`.
    Token,
    /// `GET /api/sales/{id}/status`.
    Status,
    /// `GET /api/captcha`: the challenge.
    Captcha,
    /// Solving the proof of work, in the client (no request).
    Solve,
    /// `POST /api/captcha`: the pass token.
    Pass,
    /// `POST /api/sales/{id}/buy`.
    Buy,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::Token,
        Route::Status,
        Route::Captcha,
        Route::Solve,
        Route::Pass,
        Route::Buy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Route::Token => "token",
            Route::Status => "status",
            Route::Captcha => "captcha",
            Route::Solve => "solve",
            Route::Pass => "pass",
            Route::Buy => "buy",
        }
    }
}

/// Humans or bots, for latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Human,
    Bot,
}

impl Side {
    pub fn of(role: Role) -> Self {
        match role {
            Role::Human => Side::Human,
            Role::Bot(_) => Side::Bot,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Human => "human",
            Side::Bot => "bot",
        }
    }
}

/// What stopped a request or answered it, from its status and JSON body: `429 ip` (the limit),
/// `401 bad_signature` (the reason), `403 pass_token_invalid wrong_user` (error and reason),
/// `200 reserved`, `no_answer timeout`.
pub fn answer_key(answer: &Answer) -> String {
    let status = answer.status;
    if status == 0 {
        return format!("no_answer {}", answer.failure.unwrap_or("unknown"));
    }
    let error = answer.field("error");
    let reason = answer.field("reason");
    let detail = match status {
        429 => answer.field("limit").or(error).map(str::to_string),
        401 => reason.or(error).map(str::to_string),
        200..=299 => answer.field("status").map(str::to_string),
        _ => error.map(|e| match reason {
            Some(r) => format!("{e} {r}"),
            None => e.to_string(),
        }),
    };
    match detail {
        Some(d) => format!("{status} {d}"),
        None => status.to_string(),
    }
}

/// Units of one identity.
#[derive(Debug, Clone, Copy)]
pub struct Holding {
    pub role: Role,
    pub units: u64,
}

#[derive(Debug, Default)]
pub struct Tally {
    /// (sender, route, answer key) → answers.
    pub answers: BTreeMap<(Role, Route, String), u64>,
    pub latency: BTreeMap<(Side, Route), Histogram<u64>>,
    /// uid → its units, for every identity that bought.
    pub holdings: HashMap<String, Holding>,
    /// How each actor's play ended, per role: the answer key of its last step for honest users
    /// (`200 reserved`, `410 sold_out`), or what cut it short (`image_required`, `saw sold_out`).
    pub endings: BTreeMap<(Role, String), u64>,
    /// Identities played, per role.
    pub identities: BTreeMap<Role, u64>,
    /// Proof-of-work difficulty → challenges seen with it.
    pub difficulties: BTreeMap<u8, u64>,
    /// Challenges that asked for an image, humans and bots.
    pub image_required: u64,
}

impl Tally {
    /// Counts `answer`, sent by `role`, and its latency.
    pub fn answer(&mut self, role: Role, answer: &Answer) {
        *self
            .answers
            .entry((role, answer.route, answer_key(answer)))
            .or_default() += 1;
        self.latency(Side::of(role), answer.route, answer.latency);
    }

    /// Counts a buy `answer` of identity `uid`, sent by `role`: a unit when it reserved.
    pub fn buy(&mut self, role: Role, uid: &str, answer: &Answer) {
        self.answer(role, answer);
        let holding = self
            .holdings
            .entry(uid.to_string())
            .or_insert(Holding { role, units: 0 });
        if answer.is_unit() {
            holding.units += 1;
        }
    }

    pub fn latency(&mut self, side: Side, route: Route, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let hist = self
            .latency
            .entry((side, route))
            .or_insert_with(new_histogram);
        // `record` grows the histogram; clamping is only the fallback of a value past u64 range.
        if hist.record(micros).is_err() {
            hist.saturating_record(micros);
        }
    }

    pub fn ending(&mut self, role: Role, how: impl Into<String>) {
        *self.endings.entry((role, how.into())).or_default() += 1;
    }

    pub fn identity(&mut self, role: Role) {
        *self.identities.entry(role).or_default() += 1;
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        for (k, v) in other.answers {
            *self.answers.entry(k).or_default() += v;
        }
        for (k, h) in other.latency {
            self.latency.entry(k).or_insert_with(new_histogram).add(h)?;
        }
        for (uid, theirs) in other.holdings {
            self.holdings
                .entry(uid)
                .and_modify(|ours| ours.units += theirs.units)
                .or_insert(theirs);
        }
        for (k, v) in other.endings {
            *self.endings.entry(k).or_default() += v;
        }
        for (k, v) in other.identities {
            *self.identities.entry(k).or_default() += v;
        }
        for (k, v) in other.difficulties {
            *self.difficulties.entry(k).or_default() += v;
        }
        self.image_required += other.image_required;
        Ok(())
    }

    /// Answers by (role, key), over every route.
    pub fn by_key(&self, role: Role) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((r, _, key), n) in &self.answers {
            if *r == role {
                *out.entry(key.clone()).or_default() += n;
            }
        }
        out
    }
}

/// An auto-resizing histogram of µs with 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    #[allow(
        clippy::expect_used,
        reason = "3 significant digits is within hdrhistogram's 0..=5, so creation cannot fail"
    )]
    let hist = Histogram::new(3).expect("3 significant digits is a valid precision");
    hist
}

/// The units an identity of `role` may get from one honest purchase (see the module doc of
/// `crowd`): one for honest users and for bots with a real identity and a real captcha.
pub fn allowance(role: Role) -> u64 {
    match role {
        Role::Human => 1,
        Role::Bot(kind) => u64::from(kind.has_honest_purchase()),
    }
}

/// Units of `kind`'s identities beyond their allowance, and all their units.
pub fn units_of(holdings: &HashMap<String, Holding>, role: Role) -> (u64, u64) {
    holdings
        .values()
        .filter(|h| h.role == role)
        .fold((0, 0), |(units, extra), h| {
            (
                units + h.units,
                extra + h.units.saturating_sub(allowance(role)),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::{answer_key, Route};
    use crate::crowd::client::Answer;

    fn check(status: u16, body: serde_json::Value, expected: &str) {
        let answer = Answer {
            route: Route::Buy,
            status,
            body,
            latency: Duration::ZERO,
            failure: None,
        };
        assert_eq!(answer_key(&answer), expected);
    }

    #[test]
    fn answer_keys_name_what_stopped_a_request() {
        check(200, json!({"status": "reserved"}), "200 reserved");
        check(200, json!({"pass_token": "x"}), "200");
        check(
            401,
            json!({"error": "unauthorized", "reason": "bad_signature"}),
            "401 bad_signature",
        );
        check(
            429,
            json!({"error": "rate_limited", "limit": "ip"}),
            "429 ip",
        );
        check(
            403,
            json!({"error": "pass_token_invalid", "reason": "wrong_user"}),
            "403 pass_token_invalid wrong_user",
        );
        check(409, json!({"error": "duplicate"}), "409 duplicate");
        check(502, serde_json::Value::Null, "502");
    }
}
