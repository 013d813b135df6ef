//! The demo sale of a state folder: `DEMO_STOCK` units, each order held `DEMO_HOLD_SECONDS`,
//! created once through the origin's API and its answer kept (`demo-sale.json`, or a file named
//! after other settings: they make another sale), so a second `up` shows the same sale.

use anyhow::{bail, Context};
use serde_json::json;

use crate::say::{header, say};
use crate::settings::Settings;

/// The demo sale: the origin's answer, as it came, and its id.
#[derive(Debug, Clone)]
pub struct Sale {
    pub answer: String,
    pub id: String,
}

pub async fn ensure(settings: &Settings, origin_url: &str) -> anyhow::Result<Sale> {
    let (stock, hold) = (settings.demo_stock, settings.demo_hold_seconds);
    let file = match (stock, hold) {
        (500, 600) => settings.state.join("demo-sale.json"),
        _ => settings
            .state
            .join(format!("demo-sale-{stock}-units-{hold}-s.json")),
    };
    let kept = std::fs::read_to_string(&file)
        .ok()
        .filter(|text| !text.trim().is_empty());
    let answer = match kept {
        Some(answer) => {
            say("deploy/up", "demo sale: already created");
            answer
        }
        None => {
            header(
                "deploy/up",
                format!("creating the demo sale ({stock} units, holds of {hold} s)"),
            );
            let body = json!({
                "name": "Demo sneakers",
                "stock": stock,
                "hold_seconds": hold,
                "price_cents": 12900,
                "currency": "EUR",
            });
            let url = format!("{origin_url}/v1/sales");
            let log = settings.show(&settings.logs().join("origin.log"));
            let failed = || format!("demo sale: POST {url} failed (log: {log})");
            let answer = reqwest::Client::new()
                .post(&url)
                .timeout(std::time::Duration::from_secs(10))
                .json(&body)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(failed)?
                .text()
                .await
                .with_context(failed)?;
            let new = file.with_extension("json.tmp");
            std::fs::write(&new, &answer)?;
            std::fs::rename(&new, &file)?;
            answer
        }
    };
    let parsed: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    let id = match &parsed["id"] {
        serde_json::Value::String(id) => id.clone(),
        serde_json::Value::Number(id) => id.to_string(),
        _ => bail!("demo sale: no \"id\" in the answer: {answer}"),
    };
    Ok(Sale { answer, id })
}
