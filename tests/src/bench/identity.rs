//! The buy path under each kind of user token, side by side in one run: the edges on today's
//! HS256 key, then on the keys of an identity provider (a JWKS endpoint of the harness holding an
//! RS256 and an ES256 key, read by `kid`), alternated round by round. Each round: buyers earn
//! their passes (not measured), then buy through nginx, and the CPU of every stack process is
//! measured per attempt; the medians per algorithm, their ratios to HS256, and the requests the
//! provider got over the whole phase (the start of each JWKS round fetches the set once).

use serde_json::{json, Value};

use super::{
    cpu::{self, Meter},
    measure,
    phases::CONCURRENCY,
    system::median,
    world::World,
};
use crate::{
    edge_process::EdgeOptions,
    jwks_server::{JwksServer, SigningKey},
    redis_under_test::RedisUnderTest,
};

/// How the tokens of a round are signed.
#[derive(Clone, Copy)]
enum Signer {
    Hs256,
    Provider(jsonwebtoken::Algorithm),
}

impl Signer {
    fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "hs256",
            Self::Provider(jsonwebtoken::Algorithm::RS256) => "rs256",
            Self::Provider(_) => "es256",
        }
    }
}

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
        Signer::Hs256,
        Signer::Provider(jsonwebtoken::Algorithm::RS256),
        Signer::Provider(jsonwebtoken::Algorithm::ES256),
    ];
    let meter = Meter::new(cpu::stack_processes(world));
    let mut cpu_us: Vec<Vec<f64>> = vec![Vec::new(); signers.len()];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); signers.len()];
    let mut per_process: Vec<Value> = vec![Value::Null; signers.len()];
    let mut reloads = 0;
    for round in 0..rounds {
        for (i, signer) in signers.iter().enumerate() {
            let options = match signer {
                Signer::Hs256 => &world.edge_options,
                Signer::Provider(_) => &on_provider,
            };
            // The edges change keys only between HS256 and the provider.
            if i < 2 {
                reloads += 1;
                for edge in &world.edges {
                    edge.write_config(options)?;
                    edge.sighup()?;
                }
                for edge in &world.edges {
                    edge.await_reloads(&world.stack.http, "applied", reloads)
                        .await?;
                }
            }
            let sale = world.create_sale(i64::try_from(buyers)?).await?;
            let prefix = format!("id-{}-{round}", signer.name());
            let mint = |uid: &str| -> anyhow::Result<String> {
                let claims = json!({"sub": uid, "exp": crate::shopper::now_unix() + 600});
                match signer {
                    Signer::Hs256 => crate::shopper::jwt(uid),
                    Signer::Provider(jsonwebtoken::Algorithm::RS256) => rsa.sign(&claims),
                    Signer::Provider(_) => ec.sign(&claims),
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
                signer.name(),
                bought.statuses
            );
            cpu_us[i].push(spent.total() * 1e6 / bought.attempts.max(1) as f64);
            rps[i].push(bought.attempts as f64 / bought.seconds);
            per_process[i] = spent.per_attempt(bought.attempts);
        }
    }
    // Back on the key the other phases use.
    reloads += 1;
    for edge in &world.edges {
        edge.write_config(&world.edge_options)?;
        edge.sighup()?;
        edge.await_reloads(&world.stack.http, "applied", reloads)
            .await?;
    }
    let mut out = serde_json::Map::new();
    out.insert("phase".into(), json!("identity"));
    out.insert("buyers_per_round".into(), json!(buyers));
    out.insert("rounds".into(), json!(rounds));
    let hs_cpu = median(&mut cpu_us[0].clone());
    for (i, signer) in signers.iter().enumerate() {
        let cpu = median(&mut cpu_us[i]);
        out.insert(
            signer.name().into(),
            json!({
                "cpu_us_per_buy": cpu,
                "cpu_ratio_vs_hs256": cpu / hs_cpu,
                "buys_per_second": median(&mut rps[i]),
                "cpu_us_per_buy_by_process": per_process[i],
            }),
        );
    }
    out.insert("provider_requests".into(), json!(jwks.hits()));
    Ok(Value::Object(out))
}
