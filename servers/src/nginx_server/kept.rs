//! The launcher's nginx (`./deploy/up`): the template rendered into a prefix of the state folder,
//! checked with `nginx -t` before use, and the master kept running after the launcher exits. A
//! second start leaves a running nginx alone, or reloads it (SIGHUP: new workers take over, the
//! old ones finish what they serve) when the rendered config changed.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Command;

use super::{nginx_binary, prefix_arg, test_config, write_config, Settings};
use crate::kept;

/// What [`start_kept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptNginx {
    Started(u32),
    /// Ran already with the same config.
    Unchanged(u32),
    /// Ran already: given the new config with SIGHUP.
    Reloaded(u32),
}

/// Renders `settings` into `<prefix>/nginx.conf.new` and checks it with `nginx -t`; an error
/// quotes its output.
async fn render_checked(settings: &Settings) -> anyhow::Result<std::path::PathBuf> {
    let new = write_config(settings, "nginx.conf.new")?;
    test_config(&settings.prefix, &new).await.with_context(|| {
        format!(
            "nginx: the config rendered from nginx/nginx.conf.template fails nginx -t: {}",
            new.display()
        )
    })?;
    Ok(new)
}

/// The launcher's config for `settings` rendered into a new temp dir and checked with
/// `nginx -t` (`./deploy/test` runs it): its output.
pub async fn check_deploy_config(settings: &Settings) -> anyhow::Result<String> {
    let dir = super::prefix_dir()?;
    let settings = Settings {
        prefix: dir.path().to_path_buf(),
        ..settings.clone()
    };
    let new = write_config(&settings, "nginx.conf")?;
    test_config(dir.path(), &new).await
}

/// Starts nginx with `settings` (its prefix made first), output appended to `log`, the master's
/// pid recorded in `pid_file` (unless it runs already: then its pid there is left alone).
pub async fn start_kept(
    settings: &Settings,
    log: &Path,
    pid_file: &kept::PidFile,
) -> anyhow::Result<KeptNginx> {
    let config = settings.prefix.join("nginx.conf");
    let running = pid_file.live(&config.to_string_lossy());
    std::fs::create_dir_all(&settings.prefix)
        .with_context(|| format!("creating {}", settings.prefix.display()))?;
    let new = render_checked(settings).await?;
    if let Some(pid) = running {
        let same = std::fs::read(&new).ok() == std::fs::read(&config).ok();
        if same {
            std::fs::remove_file(&new)?;
            return Ok(KeptNginx::Unchanged(pid));
        }
        std::fs::rename(&new, &config)?;
        kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGHUP).context("nginx: SIGHUP")?;
        return Ok(KeptNginx::Reloaded(pid));
    }
    std::fs::rename(&new, &config)?;
    // `daemon off` in the config: the master stays the process started here.
    let binary = nginx_binary();
    let mut command = Command::new(&binary);
    command
        .arg("-p")
        .arg(prefix_arg(&settings.prefix))
        .arg("-c")
        .arg(&config);
    kept::keep(&mut command, log)?;
    let mut child = command
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))?;
    let pid = child.id().context("a child just spawned has a pid")?;
    pid_file.write(pid)?;
    let url = format!("http://127.0.0.1:{}/", settings.port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    // Any answer of nginx's own (a 404 for `/`) means it serves this config.
    kept::until_ready(
        "nginx to answer",
        &mut child,
        kept::START_DEADLINE,
        log,
        || {
            let request = client.get(&url).send();
            async move { Ok(request.await?.status() == reqwest::StatusCode::NOT_FOUND) }
        },
    )
    .await?;
    Ok(KeptNginx::Started(pid))
}
