//! The bots: one kind per attack on the buy path, each recording what answered it. What should
//! stop each kind (besides `410 sold_out` once the sale is sold out, which stops everyone):
//!
//! | kind | attack | stopped by |
//! |---|---|---|
//! | `no_pass` | valid JWT, buys with an empty and a made-up pass token | `403 pass_token_invalid` |
//! | `replayed_pass` | solves one captcha, fires the same pass `replay_buys` times at once, each from another proxy address | `403 pass_token_spent`, `429 uid`; one may buy |
//! | `other_uid_pass` | buys with a pass token issued to an accomplice uid | `403 pass_token_invalid wrong_user` |
//! | `uid_hammer` | one uid, `hammer_buys` fresh pass tokens, all buys at once from rotating addresses | `409 duplicate`, `429 uid`; one may buy |
//! | `ip_swarm` | `swarm_size` uids with real passes, all buying at once from 203.0.113.7 | `429 ip` past the address's burst |
//! | `forged_none` | JWT with `alg: none` | `401 wrong_algorithm` |
//! | `forged_key` | JWT signed with a guessed key | `401 bad_signature` |
//! | `expired` | a real JWT that expired an hour ago | `401 expired` |
//! | `malformed` | broken JSON, wrong types, unknown fields, a 10 KB body | `400`, `413 body_too_large` |
//!
//! Only `replayed_pass`, `uid_hammer` and `ip_swarm` play real identities that solved a real
//! captcha: each of their uids may get the one unit an honest purchase gives (see the module doc
//! of `crowd` for `units`, `extra_units` and `bot_units`).

use std::{fmt, net::IpAddr, str::FromStr, sync::Arc};

use hyper::body::Bytes;
use serde_json::json;

use super::{
    captcha,
    client::{Answer, Call},
    forge,
    roster::Role,
    scene::{Scene, SWARM_IP},
    tally::{Route, Tally},
};

/// A kind of bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BotKind {
    NoPass,
    ReplayedPass,
    OtherUidPass,
    UidHammer,
    IpSwarm,
    ForgedNone,
    ForgedKey,
    Expired,
    Malformed,
}

impl BotKind {
    pub const ALL: [BotKind; 9] = [
        BotKind::NoPass,
        BotKind::ReplayedPass,
        BotKind::OtherUidPass,
        BotKind::UidHammer,
        BotKind::IpSwarm,
        BotKind::ForgedNone,
        BotKind::ForgedKey,
        BotKind::Expired,
        BotKind::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BotKind::NoPass => "no_pass",
            BotKind::ReplayedPass => "replayed_pass",
            BotKind::OtherUidPass => "other_uid_pass",
            BotKind::UidHammer => "uid_hammer",
            BotKind::IpSwarm => "ip_swarm",
            BotKind::ForgedNone => "forged_none",
            BotKind::ForgedKey => "forged_key",
            BotKind::Expired => "expired",
            BotKind::Malformed => "malformed",
        }
    }

    /// Whether this kind's identities are real and solved a real captcha, so that each may get
    /// the one unit of an honest purchase.
    pub fn has_honest_purchase(self) -> bool {
        matches!(
            self,
            BotKind::ReplayedPass | BotKind::UidHammer | BotKind::IpSwarm
        )
    }

    /// Whether this kind forges its identity: the edge must answer it 401.
    pub fn is_forged(self) -> bool {
        matches!(
            self,
            BotKind::ForgedNone | BotKind::ForgedKey | BotKind::Expired
        )
    }
}

impl fmt::Display for BotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BotKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BotKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = BotKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown bot kind {s:?} (known: {})", known.join(", "))
            })
    }
}

/// Plays bot `i` of `kind`.
pub async fn attack(scene: &Arc<Scene>, tally: &mut Tally, kind: BotKind, i: usize) {
    let role = Role::Bot(kind);
    let uid = scene.uid(i);
    let ip = scene.bot_ip(i, 0);
    if kind != BotKind::IpSwarm {
        tally.identity(role);
    }
    match kind {
        BotKind::NoPass => {
            let Some(token) = scene.user_token(tally, role, &uid).await else {
                return;
            };
            for pass in ["", "eyJhbGciOiJIUzI1NiJ9.e30.bm90LWEtcGFzcw"] {
                let body = json!({ "pass_token": pass }).to_string();
                let answer = buy(scene, &token, body, ip).await;
                tally.buy(role, &uid, &answer);
            }
        }
        BotKind::ReplayedPass => {
            let Some(token) = scene.user_token(tally, role, &uid).await else {
                return;
            };
            let Some(pass) = captcha::pass(scene, tally, role, &token, ip).await else {
                return;
            };
            let body = Bytes::from(json!({ "pass_token": pass }).to_string());
            let shots = (0..scene.config().replay_buys)
                .map(|hop| (token.clone(), body.clone(), scene.bot_ip(i, hop)))
                .collect();
            for answer in at_once(scene, shots).await {
                tally.buy(role, &uid, &answer);
            }
        }
        BotKind::OtherUidPass => {
            let accomplice = format!("{uid}-a");
            let Some(theirs) = scene.user_token(tally, role, &accomplice).await else {
                return;
            };
            let their_ip = scene.bot_ip(i, 1);
            let Some(pass) = captcha::pass(scene, tally, role, &theirs, their_ip).await else {
                return;
            };
            let Some(token) = scene.user_token(tally, role, &uid).await else {
                return;
            };
            let body = json!({ "pass_token": pass }).to_string();
            let answer = buy(scene, &token, body, ip).await;
            tally.buy(role, &uid, &answer);
        }
        BotKind::UidHammer => {
            let Some(token) = scene.user_token(tally, role, &uid).await else {
                return;
            };
            let mut shots = Vec::new();
            for hop in 0..scene.config().hammer_buys {
                let Some(pass) = captcha::pass(scene, tally, role, &token, ip).await else {
                    break;
                };
                let body = Bytes::from(json!({ "pass_token": pass }).to_string());
                shots.push((token.clone(), body, scene.bot_ip(i, hop)));
            }
            for answer in at_once(scene, shots).await {
                tally.buy(role, &uid, &answer);
            }
        }
        BotKind::IpSwarm => swarm(scene, tally, &uid).await,
        BotKind::ForgedNone | BotKind::ForgedKey | BotKind::Expired => {
            let token = match kind {
                BotKind::ForgedNone => forge::alg_none(&uid),
                BotKind::ForgedKey => forge::wrong_key(&uid),
                _ => forge::expired(scene, &uid),
            };
            let answer = scene
                .http
                .send(
                    Call::get(Route::Captcha, scene.captcha_path())
                        .bearer(&token)
                        .from_ip(ip),
                )
                .await;
            tally.answer(role, &answer);
            let body = json!({ "pass_token": "eyJhbGciOiJIUzI1NiJ9.e30.c3RvbGVu" }).to_string();
            let answer = buy(scene, &token, body, ip).await;
            tally.buy(role, &uid, &answer);
        }
        BotKind::Malformed => {
            let Some(token) = scene.user_token(tally, role, &uid).await else {
                return;
            };
            let oversized = json!({ "pass_token": "x".repeat(10_000) }).to_string();
            for body in [
                "{\"pass_token\": ".to_string(),
                "{\"pass_token\": 5}".to_string(),
                "{\"pass_token\": \"x\", \"uid\": \"admin\"}".to_string(),
                oversized,
            ] {
                let answer = buy(scene, &token, body, ip).await;
                tally.buy(role, &uid, &answer);
            }
            let answer = scene
                .http
                .send(
                    Call::post(Route::Pass, "/api/captcha".into(), "{\"sale\": ")
                        .bearer(&token)
                        .from_ip(ip),
                )
                .await;
            tally.answer(role, &answer);
        }
    }
}

/// `swarm_size` real uids behind one address: each gets its JWT and its pass, then all buy at
/// once.
async fn swarm(scene: &Arc<Scene>, tally: &mut Tally, uid: &str) {
    let role = Role::Bot(BotKind::IpSwarm);
    let mut shots = Vec::new();
    let mut members = Vec::new();
    for j in 0..scene.config().swarm_size {
        let member = format!("{uid}-s{j}");
        tally.identity(role);
        let Some(token) = scene.user_token(tally, role, &member).await else {
            continue;
        };
        let Some(pass) = captcha::pass(scene, tally, role, &token, Some(SWARM_IP)).await else {
            continue;
        };
        let body = Bytes::from(json!({ "pass_token": pass }).to_string());
        shots.push((token, body, Some(SWARM_IP)));
        members.push(member);
    }
    for (member, answer) in members.iter().zip(at_once(scene, shots).await) {
        tally.buy(role, member, &answer);
    }
}

async fn buy(scene: &Scene, token: &str, body: String, ip: Option<IpAddr>) -> Answer {
    scene
        .http
        .send(
            Call::post(Route::Buy, scene.buy_path(), body)
                .bearer(token)
                .from_ip(ip),
        )
        .await
}

/// Fires one buy per `(token, body, address)` at the same moment; the answers in that order.
async fn at_once(scene: &Arc<Scene>, shots: Vec<(String, Bytes, Option<IpAddr>)>) -> Vec<Answer> {
    let gate = Arc::new(tokio::sync::Barrier::new(shots.len() + 1));
    let mut tasks = Vec::with_capacity(shots.len());
    for (token, body, ip) in shots {
        let (scene, gate) = (scene.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let call = Call::post(Route::Buy, scene.buy_path(), body)
                .bearer(&token)
                .from_ip(ip);
            scene.http.send(call).await
        }));
    }
    gate.wait().await;
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap_or_else(|_| Answer::lost(Route::Buy)));
    }
    answers
}
