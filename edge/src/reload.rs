//! SIGHUP: the config file is read again and, if valid, swapped in as a whole. A bad file is
//! refused with the log naming the field, and the running config stays. Fields that are not
//! reloadable (listen addresses, Redis, the image captcha pool's size and pace) are reported
//! and keep their running value.

use tokio::signal::unix::{signal, SignalKind};

use crate::{
    config::{Config, ConfigFile},
    state::{AppState, Runtime},
};

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    Applied,
    /// Refused; the message names the bad field(s).
    Refused(String),
}

/// Loads the config file again and applies it.
pub fn reload(state: &AppState) -> Reloaded {
    let Some(path) = &state.config_path else {
        return Reloaded::Refused("no config file to reload".into());
    };
    let outcome = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let current = state.runtime.load();
            for field in not_reloaded(&current.config, &config) {
                tracing::warn!(field, "not reloadable: takes effect at the next start");
            }
            let runtime = Runtime::build(config, Some(&current), &state.metrics)?;
            state.difficulty.reconfigure(&runtime.config.captcha);
            state.runtime.store(std::sync::Arc::new(runtime));
            Ok(())
        });
    match outcome {
        Ok(()) => {
            state.metrics.reload("applied");
            tracing::info!(path = %path.display(), "config reloaded");
            Reloaded::Applied
        }
        Err(message) => {
            state.metrics.reload("refused");
            tracing::error!(path = %path.display(), error = %message, "config reload refused; the running config stays");
            Reloaded::Refused(message)
        }
    }
}

/// The fields that differ between `running` and `loaded` but keep their running value until the
/// next start: the listen addresses and their connection limits, Redis, and the image captcha pool (drawn ahead at the
/// size and pace it was started with).
pub fn not_reloaded(running: &Config, loaded: &Config) -> Vec<&'static str> {
    [
        ("http.listen", running.http.listen != loaded.http.listen),
        ("admin.listen", running.admin.listen != loaded.admin.listen),
        (
            "http.connections",
            running.http.connections != loaded.http.connections,
        ),
        ("redis", running.redis != loaded.redis),
        (
            "captcha.image_slots",
            running.captcha.image_slots != loaded.captcha.image_slots,
        ),
        (
            "captcha.images_per_second",
            running.captcha.images_per_second != loaded.captcha.images_per_second,
        ),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

/// Reloads on every SIGHUP until the process ends.
pub async fn on_sighup(state: AppState) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP; reloads disabled");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading config");
        reload(&state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_that_wait_for_the_next_start_are_named() {
        let running = Config::default();
        let check = |change: fn(&mut Config), expected: &[&str]| {
            let mut loaded = running.clone();
            change(&mut loaded);
            assert_eq!(not_reloaded(&running, &loaded), expected);
        };
        check(|_| {}, &[]);
        check(|c| c.limits.ip.burst += 1, &[]);
        check(|c| c.http.listen.set_port(1), &["http.listen"]);
        check(|c| c.admin.listen.set_port(1), &["admin.listen"]);
        check(
            |c| c.http.connections.max_connections += 1,
            &["http.connections"],
        );
        check(|c| c.redis.command_timeout_ms += 1, &["redis"]);
        check(|c| c.captcha.image_slots += 1, &["captcha.image_slots"]);
        check(
            |c| c.captcha.images_per_second += 1,
            &["captcha.images_per_second"],
        );
    }
}
