//! The buy path under each kind of user token, side by side in one run: the edges on today's
//! HS256 key, then on the keys of an identity provider (a JWKS endpoint of the harness holding an
//! RS256 and an ES256 key, read by `kid`), alternated round by round. Each round: buyers earn
//! their passes (not measured), then buy through nginx, and the CPU of every stack process is
//! measured per attempt; the medians per algorithm, their ratios to HS256, and the requests the
//! provider got (the start of each JWKS round fetches the set once). Then a crowd (20% bots of
//! every kind) under each kind of token: its requests per second, the CPU of every stack process
//! per request, and the provider's requests during each crowd.

use serde_json::{json, Value};

use super::{
    cpu::{self, Meter},
    measure,
    phases::CONCURRENCY,
    system::median,
    world::World,
};
use crate::{
    crowd::{self, CrowdConfig},
    edge_process::EdgeOptions,
    jwks_server::{JwksServer, SigningKey},
    redis_under_test::RedisUnderTest,
};

/// How the tokens of a round are signed: the HS256 secret (`key: None`) or a provider's key.
struct Signer {
    name: &'static str,
    key: Option<SigningKey>,
}

/// Users of each crowd of the phase (for 100 units).
const CROWD_USERS: usize = 20_000;

pub async fn identity<R: RedisUnderTest>(
    world: &World<R>,
    rounds: usize,
    buyers: usize,
) -> anyhow::Result<Value> {
    let rsa = SigningKey::generate(jsonwebtoken::Algorithm::RS256, "bench-rsa")?;
    let ec = SigningKey::generate(jsonwebtoken::Algorithm::ES256, "bench-ec")?;
    let jwks = JwksServer::start(&[&rsa, &ec]).await?;
    let on_provider = EdgeOptions {
        identity: Some(format!("jwks_url = \"{}\"", jwks.url())),
        ..world.edge_options.clone()
    };
    let signers = [
        Signer {
            name: "hs256",
            key: None,
        },
        Signer {
            name: "rs256",
            key: Some(rsa),
        },
        Signer {
            name: "es256",
            key: Some(ec),
        },
    ];
    let options_of = |signer: &Signer| match signer.key {
        None => &world.edge_options,
        Some(_) => &on_provider,
    };
    let meter = Meter::new(cpu::stack_processes(world));
    let mut cpu_us: Vec<Vec<f64>> = vec![Vec::new(); signers.len()];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); signers.len()];
    let mut per_process: Vec<Value> = vec![Value::Null; signers.len()];
    let mut reloads = 0;
    for round in 0..rounds {
        for (i, signer) in signers.iter().enumerate() {
            // The edges change keys only between HS256 and the provider.
            if i < 2 {
                reloads += 1;
                reload(world, options_of(signer), reloads).await?;
            }
            let sale = world.create_sale(i64::try_from(buyers)?).await?;
            let prefix = format!("id-{}-{round}", signer.name);
            let mint = |uid: &str| -> anyhow::Result<String> {
                let claims = json!({"sub": uid, "exp": crate::shopper::now_unix() + 600});
                match &signer.key {
                    None => crate::shopper::jwt(uid),
                    Some(key) => key.sign(&claims),
                }
            };
            let ready = world
                .buyers_minted(sale, &prefix, buyers, CONCURRENCY, mint)
                .await?;
            let (bought, spent) = meter
                .measure(measure::buy_all(
                    &world.nginx.url(),
                    sale,
                    ready,
                    CONCURRENCY,
                ))
                .await?;
            anyhow::ensure!(
                bought.statuses.get(&200).copied() == Some(buyers as u64),
                "{}: not every buyer bought: {:?}",
                signer.name,
                bought.statuses
            );
            cpu_us[i].push(spent.total() * 1e6 / bought.attempts.max(1) as f64);
            rps[i].push(bought.attempts as f64 / bought.seconds);
            per_process[i] = spent.per_attempt(bought.attempts);
        }
    }
    let mut crowds = serde_json::Map::new();
    for (i, signer) in signers.iter().enumerate() {
        if i < 2 {
            reloads += 1;
            reload(world, options_of(signer), reloads).await?;
        }
        let hits = jwks.hits();
        let sale = world.create_sale(100).await?;
        let mut config = CrowdConfig::new(
            world.nginx.url(),
            sale,
            Some(crate::edge_process::USER_JWT_SECRET.to_string()),
        );
        config.signer = signer.key.clone();
        config.users = CROWD_USERS;
        config.concurrency = 256;
        config.spread_ips = true;
        let (report, spent) = meter.measure(crowd::run(config)).await?;
        let summary = &report.summary;
        anyhow::ensure!(
            summary.violations.is_empty() && summary.units_sold == 100,
            "{}: the crowd's run is not sound: {summary:?}",
            signer.name
        );
        crowds.insert(
            signer.name.into(),
            json!({
                "requests": summary.requests,
                "rps": summary.rps,
                "cpu_us_per_request": spent.total() * 1e6 / summary.requests.max(1) as f64,
                "cpu_us_per_request_by_process": spent.per_attempt(summary.requests),
                "bot_units": summary.bot_units,
                "provider_requests": jwks.hits() - hits,
            }),
        );
    }
    // Back on the key the other phases use.
    reload(world, &world.edge_options, reloads + 1).await?;
    let mut out = serde_json::Map::new();
    out.insert("phase".into(), json!("identity"));
    out.insert("buyers_per_round".into(), json!(buyers));
    out.insert("rounds".into(), json!(rounds));
    let hs_cpu = median(&mut cpu_us[0].clone());
    for (i, signer) in signers.iter().enumerate() {
        let cpu = median(&mut cpu_us[i]);
        out.insert(
            signer.name.into(),
            json!({
                "cpu_us_per_buy": cpu,
                "cpu_ratio_vs_hs256": cpu / hs_cpu,
                "buys_per_second": median(&mut rps[i]),
                "cpu_us_per_buy_by_process": per_process[i],
            }),
        );
    }
    out.insert("provider_requests".into(), json!(jwks.hits()));
    out.insert("crowd_users".into(), json!(CROWD_USERS));
    out.insert("crowds".into(), Value::Object(crowds));
    Ok(Value::Object(out))
}

/// Every edge on `options`, reloaded (SIGHUP): its `n`th applied reload.
async fn reload<R: RedisUnderTest>(
    world: &World<R>,
    options: &EdgeOptions,
    n: u64,
) -> anyhow::Result<()> {
    for edge in &world.edges {
        edge.write_config(options)?;
        edge.sighup()?;
    }
    for edge in &world.edges {
        edge.await_reloads(&world.stack.http, "applied", n).await?;
    }
    Ok(())
}
