//! The front of the stack for one test, as `./deploy/up` runs it: a [`Stack`] (Redis, PostgreSQL,
//! an origin) with an edge process in front of it ([`EdgeStack`]) and, where the test needs it,
//! nginx in front of the edge ([`Front`]). One builder ([`front!`](crate::front!)) with the few
//! settings the tests vary: the origin's options, the edge's options and the folder nginx serves.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{
    edge_process::{EdgeOptions, EdgeProcess},
    net,
    nginx_server::NginxServer,
    origin_process::{OriginOptions, OriginProcess},
    stack::Stack,
};

/// A builder of the front stack with the test binaries (`origin_binary!()`, `edge_binary!()`),
/// as a [`FrontBuilder`]. A macro for the same reason as [`origin_binary!`](crate::origin_binary).
#[macro_export]
macro_rules! front {
    () => {
        $crate::front::FrontBuilder::new($crate::origin_binary!(), $crate::edge_binary!())
    };
}

/// What to start: the shipped defaults of the tests unless told otherwise.
pub struct FrontBuilder {
    origin_binary: &'static Path,
    edge_binary: &'static Path,
    origin: OriginOptions,
    edge: EdgeOptions,
}

/// Redis, PostgreSQL, an origin and one edge in front of it.
pub struct EdgeStack {
    pub stack: Stack,
    pub edge: EdgeProcess,
}

/// nginx → edge → origin → Redis and PostgreSQL.
pub struct Front {
    pub stack: Stack,
    pub edge: EdgeProcess,
    pub nginx: NginxServer,
}

impl FrontBuilder {
    pub fn new(origin_binary: &'static Path, edge_binary: &'static Path) -> Self {
        Self {
            origin_binary,
            edge_binary,
            origin: OriginOptions::default(),
            edge: EdgeOptions::default(),
        }
    }

    /// The origin's settings.
    pub fn origin(mut self, options: OriginOptions) -> Self {
        self.origin = options;
        self
    }

    /// The edge's settings.
    pub fn edge(mut self, options: EdgeOptions) -> Self {
        self.edge = options;
        self
    }

    /// Starts the stack alone (the test starts its edges itself).
    pub async fn start_stack(self) -> anyhow::Result<Stack> {
        Stack::start(self.origin_binary, self.origin).await
    }

    /// Starts the stack and one edge in front of it.
    pub async fn start_edge(self) -> anyhow::Result<EdgeStack> {
        let edge_binary = self.edge_binary;
        let options = self.edge.clone();
        let stack = self.start_stack().await?;
        let edge = start_edge(edge_binary, &stack, &options).await?;
        Ok(EdgeStack { stack, edge })
    }

    /// Starts the stack, one edge, and nginx in front of the edge serving `static_root` at
    /// `/static/` (the repository's folder is [`static_root`]).
    pub async fn start(self, static_root: &Path) -> anyhow::Result<Front> {
        let EdgeStack { stack, edge } = self.start_edge().await?;
        let nginx = NginxServer::start(&[edge_address(&edge)], static_root).await?;
        Ok(Front { stack, edge, nginx })
    }
}

/// Starts the edge `binary` with `options` in front of `stack`'s origin, on its Redis.
pub async fn start_edge(
    binary: &Path,
    stack: &Stack,
    options: &EdgeOptions,
) -> anyhow::Result<EdgeProcess> {
    EdgeProcess::start(binary, &stack.redis.url(), &[stack.origin.url()], options).await
}

/// `edge`'s `host:port`, as nginx's upstream names it.
pub fn edge_address(edge: &EdgeProcess) -> String {
    edge.url().trim_start_matches("http://").to_string()
}

/// The repository's `static/` folder, which the shipped nginx serves at `/static/`.
pub fn static_root() -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
    path.canonicalize()
        .with_context(|| format!("static folder {}", path.display()))
}

/// nginx serving `static_root` in front of an edge that is not there (a free port nobody listens
/// on): for nginx's own answers, and its answer when the edge is missing.
pub async fn nginx_without_edge(static_root: &Path) -> anyhow::Result<NginxServer> {
    let dead_edge = format!("127.0.0.1:{}", net::free_port());
    NginxServer::start(&[dead_edge], static_root).await
}

/// Starts one more origin `binary`, with the default options, on `stack`'s Redis and PostgreSQL.
pub async fn start_origin(binary: &Path, stack: &Stack) -> anyhow::Result<OriginProcess> {
    OriginProcess::start(
        binary,
        &stack.redis.url(),
        &stack.postgres.url(),
        &OriginOptions::default(),
        None,
    )
    .await
}
