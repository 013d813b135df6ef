//! The initdb'd template of the tests' servers, made once per machine and PostgreSQL major, and
//! its copy into a server's data dir; and initdb itself, which the launcher's server runs too.

use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use tokio::process::Command;

use super::install::Install;
use super::owner::Owner;
use super::USER;

/// Serialises template making within this process; across processes the rename does.
static TEMPLATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The initdb'd template dir, made first if missing.
pub async fn template(install: &Install, owner: Option<Owner>) -> anyhow::Result<PathBuf> {
    let _one_at_a_time = TEMPLATE_LOCK.lock().await;
    let parent = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let name = format!("flash-pg-template-{}", install.major);
    let template = parent.join(&name);
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!("{name}.initdb-"))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a staging dir in {}", parent.display()))?;
    if let Some(owner) = owner {
        owner.chown(staging.path())?;
    }
    let started = tokio::time::Instant::now();
    initdb(install, owner, staging.path(), Sync::No).await?;
    tracing::debug!(elapsed = ?started.elapsed(), template = %template.display(), "initdb done");
    match std::fs::rename(staging.path(), &template) {
        // Now at its new name, the staging dir must not be cleaned up.
        Ok(()) => drop(staging.keep()),
        // Another process won the race; dropping `staging` removes ours.
        Err(_) if template.join("PG_VERSION").is_file() => {}
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "renaming the initdb result to {} (remove it if it is a leftover)",
                    template.display()
                )
            })
        }
    }
    Ok(template)
}

/// Whether initdb waits until its files are safely on disk: not for a template of throwaway
/// test servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    Yes,
    No,
}

/// Runs initdb into `data` as `owner`: superuser `flash`, trust authentication, UTF-8, locale C.
pub async fn initdb(
    install: &Install,
    owner: Option<Owner>,
    data: &Path,
    sync: Sync,
) -> anyhow::Result<()> {
    let program = install.bin.join("initdb");
    let mut initdb = Command::new(&program);
    initdb
        .arg("-D")
        .arg(data)
        .args(["-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C"])
        .args((sync == Sync::No).then_some("--no-sync"))
        .current_dir("/")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(owner) = owner {
        initdb.uid(owner.uid).gid(owner.gid);
    }
    let output = initdb
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "initdb failed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `cp -a` of the template to `data`, owned by the user that runs postgres, mode 0700.
pub async fn copy_data_dir(
    template: &Path,
    data: &Path,
    owner: Option<Owner>,
) -> anyhow::Result<()> {
    let output = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(data)
        .output()
        .await
        .context("running cp -a")?;
    if !output.status.success() {
        bail!(
            "cp -a {} {} failed with {}: {}",
            template.display(),
            data.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if let Some(owner) = owner {
        // cp -a as root keeps the template's owner, which is the right one unless the template
        // was made by another user.
        if std::fs::metadata(data)?.uid() != owner.uid {
            owner.chown_tree(data)?;
        }
    }
    std::fs::set_permissions(data, Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", data.display()))
}
