//! SIGHUP: the config file is read again and, if valid, swapped in as a whole. A bad file is
//! refused with the log naming the field, and the running config stays. Fields that are not
//! reloadable (listen addresses, Redis) are reported and keep their running value.

use tokio::signal::unix::{signal, SignalKind};

use crate::{
    config::Config,
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
            for (field, changed) in [
                (
                    "http.listen",
                    config.http.listen != current.config.http.listen,
                ),
                (
                    "admin.listen",
                    config.admin.listen != current.config.admin.listen,
                ),
                ("redis", config.redis != current.config.redis),
            ] {
                if changed {
                    tracing::warn!(field, "not reloadable: takes effect at the next start");
                }
            }
            let runtime = Runtime::build(config, Some(&current))?;
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
