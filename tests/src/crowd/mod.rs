//! `crowd`: the project's own load generator, a flash crowd with bots played against the edge's
//! public API (the edge itself or nginx in front of it: the same `/api/...` paths).
//!
//! **Honest users** (`u-<run>-<i>`) do what a browser does, once: `GET` the sale's status (and
//! stop if it says `sold_out` or `ended`), `GET /api/captcha`, solve the proof of work on a
//! blocking thread (only after fetching the challenge: it is bound to the uid and the sale),
//! `POST /api/captcha` for a pass token, and buy once. An image captcha cannot be solved by a load
//! test: that user stops, counted as `image_required`. Each honest user sends its own
//! `X-Forwarded-For` address (a /64 of 2001:db8::/32, the documentation range), believed by the
//! edge from a trusted hop (loopback, nginx), so that the per-IP limit sees a crowd of clients and
//! not one.
//!
//! **Bots** are a share (`bots`) of the crowd, split evenly over the kinds asked for and placed in
//! the crowd by a seeded shuffle ([`roster`]); [`bots`] says what each kind sends and what should
//! stop it. Every answer is counted by route, sender kind and status (with the `error`, `limit` or
//! `reason` of its JSON body), and latencies go into histograms per route, humans and bots apart.
//!
//! **Units and `bot_units`.** A unit is a buy answered `200 reserved`. Every identity is allowed
//! what one honest purchase gives: one unit for honest users and for the bot kinds whose
//! identities are real and solved a real captcha (`replayed_pass`, `uid_hammer`, `ip_swarm`), none
//! for the kinds that never presented a valid pass of their own (`no_pass`, `other_uid_pass`,
//! `forged_none`, `forged_key`, `expired`, `malformed`). A kind's `units` are all the units its
//! identities got, reported honestly; its `extra_units` are the units beyond that allowance, summed
//! per identity. The summary's `bot_units` is the sum of the bots' `extra_units`: what the bots got
//! that a single honest purchase per identity would not have given them. It must be 0. The
//! attacking kinds make the attack their FIRST action (the replayed pass goes out 20 times at
//! once, the hammer's buys all at once), so a 200 among them is the one purchase the edge let
//! through, and any second one is an `extra_unit`.
//!
//! The core is [`run`]: a [`CrowdConfig`] in, a [`Report`] out, so an integration test can play a
//! crowd in-process; `src/bin/crowd.rs` only parses flags and prints.

pub mod bots;
pub mod captcha;
pub mod client;
pub mod config;
pub mod forge;
pub mod human;
pub mod report;
pub mod roster;
pub mod scene;
pub mod tally;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use anyhow::{bail, Context};
use tokio::time::Instant;

pub use bots::BotKind;
pub use config::CrowdConfig;
pub use report::Report;
pub use roster::Role;

use scene::Scene;
use tally::Tally;

/// Plays the crowd of `config` and reports what happened. Fails only on a config that cannot run
/// (reported field by field) or a client that cannot be built; every answer, refusal or
/// transport error of the run itself is counted in the report.
pub async fn run(config: CrowdConfig) -> anyhow::Result<Report> {
    let problems = config.validate();
    if !problems.is_empty() {
        bail!("crowd config: {}", problems.join("; "));
    }
    let roster = Arc::new(roster::roster(
        config.users,
        config.bots,
        &config.bot_kinds,
        config.seed,
    ));
    let workers = config.concurrency.min(config.users).max(1);
    let scene = Arc::new(Scene::new(config).context("crowd client")?);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (scene, roster, next) = (scene.clone(), roster.clone(), next.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(role) = roster.get(i) else { break };
                match role {
                    Role::Human => human::play(&scene, &mut tally, i).await,
                    Role::Bot(kind) => bots::attack(&scene, &mut tally, *kind, i).await,
                }
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.context("a crowd worker panicked")?)?;
    }
    let elapsed = started.elapsed();
    Ok(Report::new(scene.config(), &roster, total, elapsed))
}
