//! The services' configs of a state folder: `deploy/origin.toml` and `deploy/edge.toml` copied
//! with the ports of the settings on their address lines, the `[redis]` section pointed at the
//! cluster when there is one, the edge's dev mode on, and the secrets of the state folder made
//! once (`secrets`, `payment-secret`, mode 600) in place of the shipped placeholders. Comments
//! and the other lines stay as they are.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{ensure, Context};

use crate::settings::Settings;

/// The rendered configs, written into the state folder.
#[derive(Debug, Clone)]
pub struct Configs {
    pub origin: std::path::PathBuf,
    pub edge: std::path::PathBuf,
    pub payment_secret: std::path::PathBuf,
}

/// Renders both configs from `deploy/` into the state folder.
pub fn render(settings: &Settings) -> anyhow::Result<Configs> {
    let payment_secret = settings.state.join("payment-secret");
    let webhook = secret_file(&payment_secret, random_key)?;
    ensure!(
        webhook.len() >= 32 && webhook.bytes().all(|b| b.is_ascii_alphanumeric()),
        "payments: {} holds no secret of 32 letters or digits: delete it to make a new one",
        settings.show(&payment_secret)
    );
    let (jwt, captcha) = edge_secrets(&settings.state.join("secrets"))?;

    let origin_ports = [
        (8082, settings.origin_port),
        (6380, settings.redis_port),
        (5433, settings.pg_port),
    ];
    let mut origin = read(&settings.root.join("deploy/origin.toml"))?;
    origin = with_ports(&origin, &origin_ports);
    origin = with_cluster(&origin, settings.cluster.as_deref())?;
    let webhook_line = format!("webhook_secret = \"{webhook}\"");
    origin = replace_line(
        &origin,
        |line| line.starts_with("webhook_secret = \""),
        &webhook_line,
    );
    ensure!(
        origin.lines().any(|line| line == webhook_line),
        "origin: deploy/origin.toml has no webhook_secret line in [payments] to render the payment \
         secret into"
    );
    if let Some(dtm) = settings.dtm {
        origin = with_dtm(&origin, dtm.http, settings.origin_port)?;
    }
    ensure!(
        origin.contains(&format!("127.0.0.1:{}\"", settings.origin_port)),
        "origin: deploy/origin.toml has no listen line with port 8082 to point at {}",
        settings.origin_port
    );

    let edge_ports = [
        (8081, settings.edge_port),
        (8082, settings.origin_port),
        (6380, settings.redis_port),
        (9081, settings.edge_admin_port),
    ];
    let mut edge = read(&settings.root.join("deploy/edge.toml"))?;
    edge = with_ports(&edge, &edge_ports);
    edge = with_cluster(&edge, settings.cluster.as_deref())?;
    edge = replace_line(
        &edge,
        |line| line.starts_with("dev_mode = false"),
        "dev_mode = true",
    );
    edge = replace_line(
        &edge,
        |line| line.starts_with("key = \""),
        &format!("key = \"{jwt}\""),
    );
    edge = replace_line(
        &edge,
        |line| line.starts_with("secret = \""),
        &format!("secret = \"{captcha}\""),
    );
    let dev_webhook = format!("dev_webhook_secret = \"{webhook}\"");
    edge = replace_line(
        &edge,
        |line| line.starts_with("# dev_webhook_secret = "),
        &dev_webhook,
    );

    let configs = Configs {
        origin: settings.state.join("origin.toml"),
        edge: settings.state.join("edge.toml"),
        payment_secret,
    };
    write(&configs.origin, &origin)?;
    write(&configs.edge, &edge)?;
    Ok(configs)
}

/// Points `[coordinator]` at the launcher's dtm server (its HTTP port `dtm_port`), which calls
/// the origin back on `origin_port`.
fn with_dtm(text: &str, dtm_port: u16, origin_port: u16) -> anyhow::Result<String> {
    let lines = [
        ("kind = ", "kind = \"dtm\"".to_owned()),
        (
            "# dtm_url = ",
            format!(
                "dtm_url = \"{}\"",
                flash_servers::dtm_server::api_url(dtm_port)
            ),
        ),
        (
            "# callback_url = ",
            format!("callback_url = \"http://127.0.0.1:{origin_port}\""),
        ),
    ];
    let mut text = text.to_owned();
    for (prefix, line) in lines {
        let before = text.clone();
        text = replace_line(&text, |l| l.starts_with(prefix), &line);
        ensure!(
            text != before || before.lines().any(|l| l == line),
            "origin: deploy/origin.toml has no `{prefix}…` line in [coordinator] for COORDINATOR=dtm"
        );
    }
    Ok(text)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Written whole, then moved in place.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let new = path.with_extension("toml.tmp");
    std::fs::write(&new, text).with_context(|| format!("writing {}", new.display()))?;
    std::fs::rename(&new, path).with_context(|| format!("writing {}", path.display()))
}

fn lines_map(text: &str, mut map: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match map(line) {
            Some(new) => out.push_str(&new),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn replace_line(text: &str, matches: impl Fn(&str) -> bool, new: &str) -> String {
    lines_map(text, |line| matches(line).then(|| new.to_owned()))
}

/// On the lines that name an address (`listen`, `url`, `urls`), `:{from}` not followed by a digit
/// becomes `:{to}`.
fn with_ports(text: &str, ports: &[(u16, u16)]) -> String {
    lines_map(text, |line| {
        let key = line.trim_start().split(['=', ' ']).next().unwrap_or("");
        if !matches!(key, "listen" | "url" | "urls") || !line.contains('=') {
            return None;
        }
        let mut line = line.to_owned();
        for (from, to) in ports {
            let (from, to) = (format!(":{from}"), format!(":{to}"));
            let mut out = String::new();
            let mut rest = line.as_str();
            while let Some(at) = rest.find(&from) {
                let after = &rest[at + from.len()..];
                let whole = !after.starts_with(|c: char| c.is_ascii_digit());
                out.push_str(&rest[..at]);
                out.push_str(if whole { &to } else { &from });
                rest = after;
            }
            out.push_str(rest);
            line = out;
        }
        Some(line)
    })
}

/// Points the `[redis]` section at the cluster: its `mode` line becomes `mode = "cluster"` and the
/// seed list of every node; the section's old `nodes` (one line or several) goes.
fn with_cluster(text: &str, nodes: Option<&[u16]>) -> anyhow::Result<String> {
    let Some(nodes) = nodes else {
        return Ok(text.to_owned());
    };
    let seeds: Vec<String> = nodes
        .iter()
        .map(|port| format!("\"redis://127.0.0.1:{port}/\""))
        .collect();
    let seeds = format!("nodes = [{}]", seeds.join(", "));
    let (mut out, mut in_redis, mut skipping, mut done) = (String::new(), false, false, false);
    for line in text.lines() {
        let trimmed = line.trim_start();
        if skipping {
            skipping = !line.contains(']');
            continue;
        }
        if trimmed.starts_with('[') {
            in_redis = trimmed
                .split('#')
                .next()
                .is_some_and(|h| h.trim() == "[redis]");
        } else if in_redis && key_is(trimmed, "nodes") {
            skipping = !line.contains(']');
            continue;
        } else if in_redis && key_is(trimmed, "mode") {
            out.push_str(&format!("mode = \"cluster\"\n{seeds}\n"));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    ensure!(
        done,
        "redis cluster: a service config has no mode line in [redis] to point at the cluster"
    );
    Ok(out)
}

fn key_is(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// The secret kept in `path` (mode 600), made by `make` when the file is missing or empty.
fn secret_file(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        if !text.trim().is_empty() {
            return Ok(text.trim().to_owned());
        }
    }
    let text = make()?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(text)
}

/// The edge's user token and captcha keys, kept in `secrets` as `USER_JWT_SECRET=...` and
/// `CAPTCHA_SECRET=...` lines.
fn edge_secrets(path: &Path) -> anyhow::Result<(String, String)> {
    let text = secret_file(path, || {
        Ok(format!(
            "USER_JWT_SECRET={}\nCAPTCHA_SECRET={}\n",
            random_key()?,
            random_key()?
        ))
    })?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
            .with_context(|| {
                format!(
                    "{}: no {name} line: delete it to make new secrets",
                    path.display()
                )
            })
    };
    Ok((value("USER_JWT_SECRET")?, value("CAPTCHA_SECRET")?))
}

/// 64 random letters and digits from `/dev/urandom`.
fn random_key() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut random = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    let mut key = String::new();
    let mut byte = [0u8; 1];
    while key.len() < 64 {
        random.read_exact(&mut byte)?;
        // 248 = 4 × 62: no letter more likely than another.
        if byte[0] < 248 {
            key.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    Ok(key)
}
