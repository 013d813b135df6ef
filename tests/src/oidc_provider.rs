//! A real OpenID Connect provider for one test: `tests/oidc/provider.mjs` (the certified
//! `oidc-provider` npm package) run with the machine's Node.js, in a temp dir with its log. It
//! binds a port the kernel picks on 127.0.0.1 and prints its issuer when ready; one confidential
//! client (id, secret, the shop's redirect URI); its RS256 keys are its own. Stopped (SIGTERM by
//! pid, then killed) when dropped. A missing `node_modules` is an error naming
//! `npm ci --prefix tests/oidc`, never a skipped test.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{ensure, Context};
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::wait;

/// How long the provider may take to print its ready line, and to stop after SIGTERM.
const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// The client the shop logs its users in as.
#[derive(Debug, Clone)]
pub struct OidcClient {
    pub id: String,
    pub secret: String,
    /// The shop's callback, the one redirect URI the provider accepts.
    pub redirect_uri: String,
}

/// A running provider.
pub struct OidcProvider {
    issuer: String,
    dir: TempDir,
    child: Option<Child>,
}

/// `tests/oidc/`: the provider's script and its pinned packages.
fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

impl OidcProvider {
    /// Starts the provider for `client`, its ID tokens good for `id_token_ttl`, and waits for
    /// its ready line.
    pub async fn start(client: &OidcClient, id_token_ttl: Duration) -> anyhow::Result<Self> {
        let dir = oidc_dir();
        ensure!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{}/node_modules/oidc-provider not found: the login tests run the oidc-provider npm \
             package; install it with `npm ci --prefix tests/oidc`",
            dir.display()
        );
        let temp = tempfile::Builder::new().prefix("oidc-").tempdir()?;
        let log_path = temp.path().join("provider.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(std::env::var_os("NODE_BIN").unwrap_or_else(|| "node".into()))
            .arg(dir.join("provider.mjs"))
            .args(["--client-id", &client.id])
            .args(["--client-secret", &client.secret])
            .args(["--redirect-uri", &client.redirect_uri])
            .args(["--id-token-ttl", &id_token_ttl.as_secs().max(1).to_string()])
            .current_dir(temp.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("spawning node (set NODE_BIN to another Node.js)")?;
        let mut provider = Self {
            issuer: String::new(),
            dir: temp,
            child: Some(child),
        };
        let mut issuer = None;
        wait::until("the OpenID provider's ready line", START_DEADLINE, || {
            issuer = std::fs::read_to_string(&log_path).ok().and_then(|log| {
                log.lines()
                    .find_map(|line| line.strip_prefix("ready ").map(str::to_string))
            });
            let exited = provider
                .child
                .as_mut()
                .map(|child| child.try_wait().ok().flatten().is_some());
            let found = issuer.is_some();
            async move {
                ensure!(exited != Some(true), "the provider exited");
                Ok(found)
            }
        })
        .await
        .with_context(|| provider.log_tail())?;
        provider.issuer = issuer.context("until returned Ok only once the line was read")?;
        Ok(provider)
    }

    /// `http://127.0.0.1:<port>`, the `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Its keys (`jwks_uri` of its discovery document).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    pub fn authorization_url(&self) -> String {
        format!("{}/auth", self.issuer)
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    pub fn log_tail(&self) -> String {
        wait::log_tail(&self.dir.path().join("provider.log"), 40)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let stopped = wait::until_blocking("the provider to stop", STOP_DEADLINE, || {
                Ok(child.try_wait()?.is_some())
            });
            if stopped.is_ok() {
                return;
            }
        }
        let _ = wait::kill_and_reap(&mut child, STOP_DEADLINE);
    }
}
