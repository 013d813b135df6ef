//! The per-UID limit, shared by every edge: GCRA in Redis on Redis `TIME` (`lua/admit.lua`),
//! which also spends the captcha pass token, so a buy attempt costs ONE EVALSHA. The limit is per
//! user and sale: the keys are under the sale's `{s:<sale>}` hash tag, so that a buy attempt
//! touches one cluster node only, the one holding the sale (a node failing over stops the
//! buyers of its own sales, never those of the sales elsewhere). Unlike the other limits, the dry run
//! is applied inside the script, because it decides whether the token is spent.

use std::{sync::LazyLock, time::Duration};

use redis::{Script, Value};
use redis_layer::Redis;

use super::{count, millis, run_script, text, Decision, LimitError, Quota};
use crate::config::RateConfig;

static ADMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/admit.lua")));

/// Keys of one user in one sale, under the sale's `{s:<sale>}` hash tag: the sale's slot.
#[derive(Debug, Clone)]
pub struct UserKeys {
    prefix: String,
}

impl UserKeys {
    pub fn new(sale: i64, uid: &str) -> Self {
        Self {
            prefix: format!("{{s:{sale}}}:u:{uid}"),
        }
    }

    /// A solved captcha challenge, spent once.
    pub fn challenge(&self, id: &str) -> String {
        format!("{}:ch:{id}", self.prefix)
    }

    /// The GCRA's theoretical arrival time (ms).
    pub fn rate(&self) -> String {
        format!("{}:rl", self.prefix)
    }

    /// A spent pass token.
    pub fn spent(&self, jti: &str) -> String {
        format!("{}:jti:{jti}", self.prefix)
    }
}

/// What `admit.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit: the token is spent.
    Admitted(Quota),
    /// Over the limit in a dry run: admitted all the same, the token spent; to be logged and
    /// counted as what enforcement would have refused.
    WouldLimit { retry_after: Duration, quota: Quota },
    /// Over the limit: refused, the token NOT spent, so the user may retry with it.
    Limited { retry_after: Duration, quota: Quota },
    /// The pass token was spent already: refused, nothing changed.
    Replayed,
}

impl Admission {
    /// Whether the request goes on (admitted, or would have been limited in a dry run).
    pub fn passes(&self) -> bool {
        matches!(self, Self::Admitted(_) | Self::WouldLimit { .. })
    }

    /// The limit's verdict, for the `RateLimit-*` headers: a dry run's `WouldLimit` is a
    /// `Deny` (it passes all the same). `None` for a replay, which is no rate matter.
    pub fn decision(&self) -> Option<Decision> {
        match *self {
            Self::Admitted(quota) => Some(Decision::Allow(quota)),
            Self::WouldLimit { retry_after, quota } | Self::Limited { retry_after, quota } => {
                Some(Decision::Deny { retry_after, quota })
            }
            Self::Replayed => None,
        }
    }
}

/// The per-UID limit over one auto-reconnecting multiplexed connection.
#[derive(Clone)]
pub struct UidLimiter {
    redis: Redis,
}

impl UidLimiter {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Loads `admit.lua` into Redis, so that no request pays for a NOSCRIPT retry.
    pub async fn preload(&self) -> Result<(), LimitError> {
        Ok(self.redis.load(&[&ADMIT]).await?)
    }

    /// Counts one attempt of `uid` against `rate` and spends its pass token `jti` (remembered
    /// `spent_ttl_seconds`: until the token expires, see `PassClaims::spent_mark_ttl`), in one
    /// round trip.
    pub async fn admit(
        &self,
        sale: i64,
        uid: &str,
        jti: &str,
        rate: &RateConfig,
        spent_ttl_seconds: u64,
    ) -> Result<Admission, LimitError> {
        let usable = rate.per_second.is_finite() && rate.per_second > 0.0 && rate.burst > 0;
        if !usable {
            return Err(LimitError::Quota {
                field: "uid",
                problem: "per_second and burst must be above 0",
            });
        }
        let interval_ms = 1000.0 / rate.per_second;
        let keys = UserKeys::new(sale, uid);
        let mut inv = ADMIT.prepare_invoke();
        inv.key(keys.rate())
            .key(keys.spent(jti))
            .arg(interval_ms)
            .arg(interval_ms * f64::from(rate.burst))
            .arg(spent_ttl_seconds.max(1))
            .arg(u8::from(rate.dry_run));
        let reply: Vec<Value> = run_script(&self.redis, "admit", &inv).await?;
        let admission = parse_admission(&reply, u64::from(rate.burst))
            .ok_or(LimitError::Protocol("admit.lua reply"))?;
        match admission {
            Admission::Admitted(_) => {}
            Admission::WouldLimit { retry_after, .. } => {
                tracing::info!(%uid, ?retry_after, "uid limit would refuse (dry run)");
            }
            Admission::Limited { retry_after, .. } => {
                tracing::debug!(%uid, ?retry_after, "uid limit refused");
            }
            Admission::Replayed => tracing::info!(%uid, %jti, "pass token replayed"),
        }
        Ok(admission)
    }
}

fn parse_admission(reply: &[Value], limit: u64) -> Option<Admission> {
    let over = |remaining| -> Option<(Duration, Quota)> {
        let retry_after = millis(reply.get(1))?;
        let reset = millis(reply.get(2))?;
        let quota = Quota {
            limit,
            remaining,
            reset,
        };
        Some((retry_after, quota))
    };
    Some(match text(reply.first())? {
        "ADMITTED" => Admission::Admitted(Quota {
            limit,
            remaining: count(reply.get(1))?,
            reset: millis(reply.get(2))?,
        }),
        "LIMITED" => {
            let (retry_after, quota) = over(0)?;
            Admission::Limited { retry_after, quota }
        }
        "WOULD_LIMIT" => {
            let (retry_after, quota) = over(0)?;
            Admission::WouldLimit { retry_after, quota }
        }
        "REPLAYED" => Admission::Replayed,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn quota(remaining: u64, reset_ms: u64) -> Quota {
        Quota {
            limit: 5,
            remaining,
            reset: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn replies_parse_into_admissions() {
        let check = |reply: Vec<Value>, expected: Option<Admission>| {
            assert_eq!(parse_admission(&reply, 5), expected, "{reply:?}");
        };
        check(
            vec![bulk("ADMITTED"), Value::Int(4), Value::Int(500)],
            Some(Admission::Admitted(quota(4, 500))),
        );
        check(
            vec![bulk("LIMITED"), Value::Int(120), Value::Int(2620)],
            Some(Admission::Limited {
                retry_after: Duration::from_millis(120),
                quota: quota(0, 2620),
            }),
        );
        check(
            vec![bulk("WOULD_LIMIT"), Value::Int(1), Value::Int(2501)],
            Some(Admission::WouldLimit {
                retry_after: Duration::from_millis(1),
                quota: quota(0, 2501),
            }),
        );
        check(vec![bulk("REPLAYED")], Some(Admission::Replayed));
        check(vec![bulk("ADMITTED"), Value::Int(-1), Value::Int(5)], None);
        check(vec![bulk("LIMITED")], None);
        check(vec![bulk("NOPE")], None);
        check(vec![], None);
    }

    #[test]
    fn dry_run_passes_with_a_deny_verdict_and_a_replay_has_none() {
        let limited = Admission::Limited {
            retry_after: Duration::from_millis(9),
            quota: quota(0, 9),
        };
        let would = Admission::WouldLimit {
            retry_after: Duration::from_millis(9),
            quota: quota(0, 9),
        };
        let admitted = Admission::Admitted(quota(1, 9));
        for (admission, passes, allowed) in [
            (admitted, true, Some(true)),
            (would, true, Some(false)),
            (limited, false, Some(false)),
            (Admission::Replayed, false, None),
        ] {
            assert_eq!(admission.passes(), passes, "{admission:?}");
            assert_eq!(
                admission.decision().map(|d| d.is_allowed()),
                allowed,
                "{admission:?}"
            );
        }
    }

    #[test]
    fn keys_share_the_sale_slot() {
        let keys = UserKeys::new(7, "alice");
        assert_eq!(keys.rate(), "{s:7}:u:alice:rl");
        assert_eq!(keys.spent("j1"), "{s:7}:u:alice:jti:j1");
        assert_eq!(keys.challenge("c1"), "{s:7}:u:alice:ch:c1");
        // A uid cannot move the keys to another slot: the first {...} is the sale's.
        assert!(UserKeys::new(7, "}{x}").rate().starts_with("{s:7}:"));
    }
}
