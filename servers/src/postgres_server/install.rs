//! Where the PostgreSQL server binaries are (`PG_BIN`, else `pg_config --bindir`, else the
//! newest `/usr/lib/postgresql/*/bin`) and their major version.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::process::Command;

/// Where the PostgreSQL binaries are, and their major version.
#[derive(Clone)]
pub struct Install {
    pub bin: PathBuf,
    pub major: u32,
}

/// The install found by the first start in this process.
static INSTALL: tokio::sync::OnceCell<Install> = tokio::sync::OnceCell::const_new();

impl Install {
    pub async fn find() -> anyhow::Result<Self> {
        INSTALL.get_or_try_init(Self::search).await.cloned()
    }

    async fn search() -> anyhow::Result<Self> {
        let bin = match std::env::var_os("PG_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => match pg_config_bindir().await {
                Some(bin) => bin,
                None => newest_debian_bindir()?,
            },
        };
        let postgres = bin.join("postgres");
        let output = Command::new(&postgres)
            .arg("--version")
            .output()
            .await
            .with_context(|| format!("running {} --version", postgres.display()))?;
        let version = String::from_utf8_lossy(&output.stdout);
        let major = parse_major(&version).with_context(|| {
            format!(
                "no major version in {version:?} from {}",
                postgres.display()
            )
        })?;
        Ok(Install { bin, major })
    }
}

async fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .await
        .ok()?;
    let bin = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (output.status.success() && bin.join("postgres").is_file()).then_some(bin)
}

fn newest_debian_bindir() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let bin = |major: u32| root.join(major.to_string()).join("bin");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&major| bin(major).join("postgres").is_file())
        .max();
    newest.map(bin).context(
        "no PostgreSQL found: set PG_BIN, put pg_config on PATH or install it under /usr/lib/postgresql",
    )
}

/// The major version in `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)`.
fn parse_major(version: &str) -> Option<u32> {
    let number = version
        .split("(PostgreSQL)")
        .nth(1)?
        .split_whitespace()
        .next()?;
    number
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn major_versions_are_parsed() {
        let check = |version: &str, expected: Option<u32>| {
            assert_eq!(parse_major(version), expected, "{version}");
        };
        check(
            "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n",
            Some(15),
        );
        check("postgres (PostgreSQL) 17.2\n", Some(17));
        check("postgres (PostgreSQL) 18beta1\n", Some(18));
        check("postgres 15\n", None);
    }
}
