//! A real headless Chromium for browser tests, driven over WebDriver: `chromedriver` started as a
//! child process on a free port (in its own process group, so the browsers it starts go with it),
//! one Chromium per session with its own profile in a temp dir, and the browser's console read
//! back so a test can fail on a script error. Chromium and chromedriver are Debian's
//! (`apt-get install chromium chromium-driver`); `CHROMIUM_BIN` and `CHROMEDRIVER_BIN` point at
//! others. A missing binary is an error naming that install, never a skipped test.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{bail, ensure, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{net, wait};

/// Where Debian puts Chromium.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian puts chromedriver.
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How many fresh ports to try when another process took the one chromedriver was given.
const START_ATTEMPTS: usize = 3;

/// The binary named by the environment variable `var`, else `default`; an error naming the
/// Debian packages when it is not there.
fn binary(var: &str, default: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    ensure!(
        path.is_file(),
        "{} not found: the browser tests need Chromium and chromedriver; install them with \
         `apt-get install chromium chromium-driver` (or set {var} to the binary)",
        path.display()
    );
    Ok(path)
}

/// A running chromedriver; the browsers of its sessions die with it.
pub struct Chromedriver {
    port: u16,
    chromium: PathBuf,
    dir: TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Chromedriver {
    /// Starts chromedriver on a free port and waits until it says it is ready.
    pub async fn start() -> anyhow::Result<Self> {
        let chromium = binary("CHROMIUM_BIN", DEFAULT_CHROMIUM)?;
        let driver = binary("CHROMEDRIVER_BIN", DEFAULT_CHROMEDRIVER)?;
        let dir = tempfile::Builder::new().prefix("chromedriver-").tempdir()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = net::free_port();
            let log_path = dir.path().join(format!("chromedriver-{port}.log"));
            let log = std::fs::File::create(&log_path)?;
            let mut child = Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("spawn {}", driver.display()))?;
            match wait_ready(&http, port, &mut child).await {
                Ok(()) => {
                    return Ok(Self {
                        port,
                        chromium,
                        dir,
                        child: Some(child),
                        http,
                    })
                }
                Err(error) => {
                    stop_group(&mut child);
                    last_error = Some(error.context(wait::log_tail(&log_path, 20)));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("chromedriver did not start")))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new browser (its own Chromium and profile): a fresh visitor.
    pub async fn session(&self) -> anyhow::Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("chromium-profile-")
            .tempdir_in(self.dir.path())?;
        let user_data = format!("--user-data-dir={}", profile.path().display());
        let options = json!({
            "binary": self.chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,900",
                user_data,
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url())
            .await
            .with_context(|| {
                format!(
                    "new Chromium session ({}); chromedriver log:\n{}",
                    self.chromium.display(),
                    self.log_tail()
                )
            })?;
        let session = client
            .session_id()
            .await?
            .context("chromedriver gave no session id")?;
        Ok(Browser {
            client,
            log_url: format!("{}/session/{session}/se/log", self.url()),
            http: self.http.clone(),
            _profile: profile,
        })
    }

    fn log_tail(&self) -> String {
        wait::log_tail(
            &self
                .dir
                .path()
                .join(format!("chromedriver-{}.log", self.port)),
            30,
        )
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child);
        }
    }
}

/// Waits until the chromedriver on `port` says it is ready, or fails if it exits.
async fn wait_ready(http: &reqwest::Client, port: u16, child: &mut Child) -> anyhow::Result<()> {
    let status = format!("http://127.0.0.1:{port}/status");
    wait::until(
        "chromedriver /status ready",
        Duration::from_secs(20),
        || {
            let exited = child.try_wait();
            let req = http.get(&status).send();
            async move {
                if let Some(code) = exited? {
                    bail!("chromedriver exited with {code}");
                }
                let body: Value = req.await?.json().await?;
                Ok(body["value"]["ready"].as_bool() == Some(true))
            }
        },
    )
    .await?;
    Ok(())
}

/// Kills chromedriver's process group (it and the browsers it started) and reaps it.
fn stop_group(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        // The group is chromedriver's own (process_group(0)), so its id is chromedriver's pid.
        // Fails only when the group is gone already.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if let Err(error) = wait::kill_and_reap(child, Duration::from_secs(10)) {
        eprintln!("chromedriver: {error:#}");
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One line of the browser's console.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleEntry {
    pub level: String,
    pub message: String,
    #[serde(default)]
    pub source: String,
}

/// A browser session: the WebDriver client and the way to its console.
pub struct Browser {
    client: Client,
    log_url: String,
    http: reqwest::Client,
    _profile: TempDir,
}

impl Browser {
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("open {url}"))
    }

    /// The text of the element `css` selects.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.client.find(Locator::Css(css)).await?;
        Ok(element.text().await?)
    }

    /// Whether the element `css` selects is enabled.
    pub async fn enabled(&self, css: &str) -> anyhow::Result<bool> {
        let element = self.client.find(Locator::Css(css)).await?;
        Ok(element.is_enabled().await?)
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.client.find(Locator::Css(css)).await?.click().await?;
        Ok(())
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.client.find(Locator::Css(css)).await?;
        element.send_keys(text).await?;
        Ok(())
    }

    /// The id of the element that has the focus ("" for one without an id, `None` when the
    /// focus is on the page's body: lost).
    pub async fn focused(&self) -> anyhow::Result<Option<String>> {
        let id = self
            .run(
                "const a = document.activeElement; \
                 return !a || a === document.body ? null : a.id;",
                vec![],
            )
            .await?;
        Ok(id.as_str().map(str::to_string))
    }

    /// Runs `script` in the page (as a function body; `arguments` are `args`).
    pub async fn run(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Waits up to `deadline` until `script` (a function body) returns true in the page, naming
    /// `what`; on a timeout the error quotes the start of the page's text.
    pub async fn until(&self, what: &str, deadline: Duration, script: &str) -> anyhow::Result<()> {
        let waited = crate::wait::until(what, deadline, || async {
            Ok(self.run(script, vec![]).await?.as_bool() == Some(true))
        })
        .await;
        let Err(error) = waited else {
            return Ok(());
        };
        let shown = self
            .run(
                "return document.body ? document.body.innerText.slice(0, 300) : null;",
                vec![],
            )
            .await
            .unwrap_or_default();
        Err(error.context(format!("the page: {shown}")))
    }

    /// Saves a PNG of the window at `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
    }

    /// The console lines logged since the last call (chromedriver's `se/log`).
    pub async fn console(&self) -> anyhow::Result<Vec<ConsoleEntry>> {
        let resp = self
            .http
            .post(&self.log_url)
            .json(&json!({"type": "browser"}))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        ensure!(status.is_success(), "browser log: {status} {body}");
        Ok(serde_json::from_value(body["value"].clone())?)
    }

    /// Ends the session (chromedriver quits its Chromium).
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.close().await?;
        Ok(())
    }
}
