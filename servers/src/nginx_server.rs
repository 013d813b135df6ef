//! A real nginx in front of test edges: `nginx/nginx.conf.template` rendered into a temp dir (the
//! prefix: config, pid, logs, temp files and micro-cache) the way `./deploy/up` renders it, checked
//! with `nginx -t`, and run in the foreground on a free loopback port until dropped. Trusts
//! 127.0.0.1 as its CDN, so a test plays many clients by sending `X-Forwarded-For`.
//!
//! The launcher's nginx (`./deploy/up`), in a state folder and kept running, is [`start_kept`].
//!
//! The binary is `NGINX_BIN`, else `nginx` on `PATH`, else `/usr/sbin/nginx`. Run as root, the
//! workers run as root too: a test's temp dirs (and the static folder it hands over) are private
//! to the user running the tests, so no other user could serve them.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{anyhow, ensure, Context};
use nix::{
    sys::signal::{kill, killpg, Signal},
    unistd::Pid,
};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{net, wait};

mod config;
mod kept;

pub use config::{render, template_path, Settings};
pub use kept::{check_deploy_config, start_kept, KeptNginx};

/// How long nginx may take to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long nginx may take to stop after SIGTERM before it and its workers are killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Ports tried when another process takes the free port first.
const PORT_ATTEMPTS: usize = 3;
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 30;

/// `NGINX_BIN`, else `nginx` found on `PATH`, else Debian's `/usr/sbin/nginx`.
pub fn nginx_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        return bin.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nginx"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// Runs `nginx -t` on `config` with `prefix`; its output on success, an error quoting it on
/// failure.
pub async fn test_config(prefix: &Path, config: &Path) -> anyhow::Result<String> {
    let binary = nginx_binary();
    let output = Command::new(&binary)
        .arg("-t")
        .arg("-p")
        .arg(prefix_arg(prefix))
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} -t", binary.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        output.status.success(),
        "nginx -t -c {} failed ({}):\n{text}",
        config.display(),
        output.status
    );
    Ok(text)
}

/// Renders the template for `edges` and `static_root` into a new temp dir and runs `nginx -t` on
/// it: its output, or an error quoting it.
pub async fn check_config(edges: &[String], static_root: &Path) -> anyhow::Result<String> {
    let dir = prefix_dir()?;
    let settings = Settings::for_test(dir.path(), net::free_port(), edges, static_root);
    let config = write_config(&settings, "nginx.conf")?;
    test_config(dir.path(), &config).await
}

/// `-p` wants the prefix with a trailing slash.
pub(crate) fn prefix_arg(prefix: &Path) -> String {
    format!("{}/", prefix.display())
}

fn prefix_dir() -> anyhow::Result<TempDir> {
    tempfile::Builder::new()
        .prefix("flash-nginx-")
        .tempdir()
        .context("creating the temp dir of nginx")
}

/// Renders the template with `settings` into `<prefix>/{name}`; returns that path.
pub(crate) fn write_config(settings: &Settings, name: &str) -> anyhow::Result<PathBuf> {
    let path = &settings.template;
    let template =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config = settings.prefix.join(name);
    std::fs::write(&config, render(&template, settings)?)
        .with_context(|| format!("writing {}", config.display()))?;
    Ok(config)
}

/// A running nginx, stopped (SIGTERM, then SIGKILL to it and its workers) when dropped; its
/// prefix goes with it.
pub struct NginxServer {
    port: u16,
    edges: Vec<String>,
    static_root: PathBuf,
    dir: TempDir,
    child: Option<Child>,
}

impl NginxServer {
    /// Renders the config for `edges` (`"127.0.0.1:PORT"` each) and `static_root` (served at
    /// `/static/`), checks it with `nginx -t` (an error quotes its output), starts nginx on a free
    /// port and waits until it answers.
    pub async fn start(edges: &[String], static_root: &Path) -> anyhow::Result<Self> {
        let mut server = Self {
            port: net::free_port(),
            edges: edges.to_vec(),
            static_root: static_root.to_path_buf(),
            dir: prefix_dir()?,
            child: None,
        };
        let mut attempt = 1;
        loop {
            match server.run().await {
                Ok(()) => return Ok(server),
                Err(error) if attempt < PORT_ATTEMPTS && server.port_was_taken() => {
                    attempt += 1;
                    tracing::debug!(port = server.port, %error, "nginx port taken, trying another");
                    server.port = net::free_port();
                    std::fs::write(server.error_log_path(), "")?;
                    std::fs::write(server.stderr_path(), "")?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The text of nginx's error log (empty when unreadable).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.error_log_path()).unwrap_or_default()
    }

    /// The text of the access log (empty when unreadable). nginx writes it in 64 KiB blocks or
    /// once a second, so the last requests may not be in it yet.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The prefix: config, pid, logs, temp files, cache.
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    /// The rendered config.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    /// The master's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Stops nginx, empties its cache and starts it again on the same port: a restart that
    /// forgot every cached answer, so nothing stale can stand in for a failing edge.
    pub async fn restart_cold(&mut self) -> anyhow::Result<()> {
        self.stop();
        let cache = self.dir.path().join("cache");
        if cache.exists() {
            std::fs::remove_dir_all(&cache)
                .with_context(|| format!("emptying {}", cache.display()))?;
        }
        self.run().await
    }

    /// Renders, tests and starts the config on the current port; waits until nginx answers.
    async fn run(&mut self) -> anyhow::Result<()> {
        let settings =
            Settings::for_test(self.dir.path(), self.port, &self.edges, &self.static_root);
        let config = write_config(&settings, "nginx.conf")?;
        test_config(self.dir.path(), &config).await?;
        let child = self.spawn(&config)?;
        let child = self.child.insert(child);
        let url = format!("http://127.0.0.1:{}/", self.port);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        // Any answer of nginx's own (a 404 for `/`) means it serves this config.
        let ready = tokio::select! {
            waited = wait::until("nginx to answer", START_DEADLINE, || {
                let request = client.get(&url).send();
                async move { Ok(request.await?.status() == reqwest::StatusCode::NOT_FOUND) }
            }) => waited.map(|_| ()),
            status = child.wait() => match status {
                Ok(status) => Err(anyhow!("nginx exited with {status} before it answered")),
                Err(error) => Err(anyhow!("waiting on nginx: {error}")),
            },
        };
        ready.map_err(|error| {
            self.stop();
            error.context(format!(
                "nginx on port {} did not start\n{}\n{}",
                self.port,
                wait::log_tail(&self.error_log_path(), LOG_TAIL_LINES),
                wait::log_tail(&self.stderr_path(), LOG_TAIL_LINES),
            ))
        })
    }

    fn spawn(&self, config: &Path) -> anyhow::Result<Child> {
        let binary = nginx_binary();
        let output = File::options()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .context("opening the stderr file of nginx")?;
        // `daemon off` is in the config: the master stays this child. Its own process group, so
        // its workers can be killed with it if it does not stop.
        Command::new(&binary)
            .arg("-p")
            .arg(prefix_arg(self.dir.path()))
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))
    }

    /// SIGTERM (nginx's fast stop: the master stops its workers, then exits) and a wait; past
    /// [`STOP_DEADLINE`], SIGKILL to the whole process group (master and workers).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
            return; // already reaped
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let stopped = wait::until_blocking("nginx to stop", STOP_DEADLINE, || {
            Ok(child.try_wait()?.is_some())
        });
        if let Err(error) = stopped {
            tracing::warn!(port = self.port, error = %format!("{error:#}"), "nginx did not stop: SIGKILL");
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            if let Err(error) = wait::kill_and_reap(&mut child, STOP_DEADLINE) {
                tracing::warn!(port = self.port, error = %format!("{error:#}"), "nginx not reaped");
            }
        }
    }

    /// Whether the last run failed because another process had bound the port.
    fn port_was_taken(&self) -> bool {
        [self.error_log_path(), self.stderr_path()]
            .iter()
            .any(|path| {
                std::fs::read_to_string(path)
                    .is_ok_and(|log| log.contains("Address already in use"))
            })
    }

    fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// Where stdout and stderr go: what nginx prints before it opens its error log.
    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("nginx.stderr")
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        self.stop();
    }
}
