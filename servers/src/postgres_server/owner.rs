//! The unprivileged user PostgreSQL runs as when this process is root (postgres refuses to run as
//! root): `postgres`, else `nobody`; for a data folder that exists, its owner.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context};
use nix::unistd::User;

/// The unprivileged user that runs initdb and postgres when the tests run as root.
#[derive(Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// `None` when not root: then PostgreSQL runs as the current user.
    pub fn for_this_process() -> anyhow::Result<Option<Self>> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        for name in ["postgres", "nobody"] {
            if let Some(user) = User::from_name(name)? {
                let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
                return Ok(Some(Owner { uid, gid }));
            }
        }
        bail!("running as root, and there is no `postgres` or `nobody` user to run PostgreSQL as")
    }

    /// The user to run PostgreSQL on `data` as: `None` when not root; the owner of `data` when
    /// it exists and is not root; else [`Owner::for_this_process`]'s.
    pub fn for_data(data: &Path) -> anyhow::Result<Option<Self>> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        match std::fs::metadata(data) {
            Ok(meta) if meta.uid() != 0 => Ok(Some(Owner {
                uid: meta.uid(),
                gid: meta.gid(),
            })),
            _ => Self::for_this_process(),
        }
    }

    /// The user's name, else its uid.
    pub fn name(self) -> String {
        match User::from_uid(self.uid.into()) {
            Ok(Some(user)) => user.name,
            _ => self.uid.to_string(),
        }
    }

    pub fn chown(self, path: &Path) -> anyhow::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {}:{} {}", self.uid, self.gid, path.display()))
    }

    pub fn chown_tree(self, path: &Path) -> anyhow::Result<()> {
        self.chown(path)?;
        if std::fs::symlink_metadata(path)?.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
}
