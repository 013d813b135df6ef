//! The launcher's settings: the environment variables `./deploy/up` and `./deploy/down` read
//! (documented in README.md), checked, and the paths of the state folder made from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};

/// Every setting, read once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The repository: deploy/*.toml, nginx/, static/.
    pub root: PathBuf,
    /// Where the user ran the script from.
    pub caller: PathBuf,
    pub nginx_port: u16,
    pub edge_port: u16,
    pub edge_admin_port: u16,
    pub origin_port: u16,
    pub redis_port: u16,
    pub pg_port: u16,
    /// `REDIS_CLUSTER=1`: the six ports of the cluster's nodes.
    pub cluster: Option<Vec<u16>>,
    /// `COORDINATOR=dtm`: a dtm server runs beside the stack, on these ports.
    pub dtm: Option<DtmPorts>,
    pub trusted_cdn: Vec<String>,
    pub demo_stock: u32,
    pub demo_hold_seconds: u32,
    pub state: PathBuf,
    /// Where cargo put the release binaries.
    pub release: PathBuf,
}

/// The HTTP and gRPC ports of the launcher's dtm server (`DTM_PORT`, `DTM_GRPC_PORT`).
#[derive(Debug, Clone, Copy)]
pub struct DtmPorts {
    pub http: u16,
    pub grpc: u16,
}

/// The ports of the services, by the name of their setting.
const PORTS: [(&str, u16); 6] = [
    ("NGINX_PORT", 8080),
    ("EDGE_PORT", 8081),
    ("EDGE_ADMIN_PORT", 9081),
    ("ORIGIN_PORT", 8082),
    ("REDIS_PORT", 6380),
    ("PG_PORT", 5433),
];

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn port(name: &str, default: u16) -> anyhow::Result<u16> {
    let Some(text) = var(name) else {
        return Ok(default);
    };
    let parsed = (text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|&port| port >= 1);
    parsed.with_context(|| format!("{name}={text} is not a TCP port (1-65535)"))
}

impl Settings {
    /// Reads the environment; `root` is the repository.
    pub fn load(root: PathBuf) -> anyhow::Result<Self> {
        let caller = std::env::current_dir().context("reading the current folder")?;
        let mut ports = Vec::new();
        let mut seen: BTreeMap<u16, String> = BTreeMap::new();
        for (name, default) in PORTS {
            let value = port(name, default)?;
            if let Some(other) = seen.insert(value, name.to_owned()) {
                bail!("{name} and {other} are both {value}: give each service its own port");
            }
            ports.push(value);
        }
        let cluster = match var("REDIS_CLUSTER").as_deref() {
            None | Some("0") => None,
            Some("1") => Some(cluster_ports(&mut seen)?),
            Some(other) => bail!(
                "REDIS_CLUSTER={other}: 1 runs a Redis Cluster of six nodes, 0 (the default) one \
                 redis-server"
            ),
        };
        let dtm = match var("COORDINATOR").as_deref() {
            None | Some("embedded") => None,
            Some("dtm") => Some(dtm_ports(&mut seen, cluster.is_some())?),
            Some(other) => bail!(
                "COORDINATOR={other}: embedded (the default) is the origin's own coordinator, dtm \
                 a dtm server beside it"
            ),
        };
        let state = absolute(
            &caller,
            var("STATE_DIR").map(PathBuf::from),
            &root.join("state"),
        );
        ensure!(
            state != caller && state != Path::new("/"),
            "STATE_DIR must name a folder of its own"
        );
        let trusted = var("NGINX_TRUSTED_CDN").unwrap_or_else(|| "127.0.0.1".to_owned());
        let trusted_cdn: Vec<String> = trusted
            .split([' ', ',', '\t'])
            .filter(|block| !block.is_empty())
            .map(str::to_owned)
            .collect();
        for block in &trusted_cdn {
            let (address, bits) = block.split_once('/').unwrap_or((block, "0"));
            ensure!(
                address.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok(),
                "NGINX_TRUSTED_CDN: {block} is not an address or CIDR block"
            );
        }
        ensure!(
            !trusted_cdn.is_empty(),
            "NGINX_TRUSTED_CDN names no address block"
        );
        let demo_stock = number(
            "DEMO_STOCK",
            500,
            9_999_999,
            "a whole number from 1 to 9999999",
        )?;
        let demo_hold_seconds = number(
            "DEMO_HOLD_SECONDS",
            600,
            999_999,
            "a whole number of seconds from 1",
        )?;
        let target = var("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let release = root.join(target).join("release");
        Ok(Self {
            nginx_port: ports[0],
            edge_port: ports[1],
            edge_admin_port: ports[2],
            origin_port: ports[3],
            redis_port: ports[4],
            pg_port: ports[5],
            cluster,
            dtm,
            trusted_cdn,
            demo_stock,
            demo_hold_seconds,
            state,
            release,
            root,
            caller,
        })
    }

    pub fn logs(&self) -> PathBuf {
        self.state.join("logs")
    }

    pub fn pids(&self) -> PathBuf {
        self.state.join("pids")
    }

    pub fn pg_dir(&self) -> PathBuf {
        self.state.join("pg")
    }

    pub fn nginx_dir(&self) -> PathBuf {
        self.state.join("nginx")
    }

    /// The file that marks a state folder as made by `up`: `down --purge` deletes only such.
    pub fn mark(&self) -> PathBuf {
        self.state.join(".flash-state")
    }

    /// A path as the user can type it: relative to the repository when run from there.
    pub fn show(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(inside) if self.caller == self.root => inside.display().to_string(),
            _ => path.display().to_string(),
        }
    }

    /// How to run `deploy/{script}` from where the user is, with STATE_DIR when not the default.
    pub fn command(&self, script: &str) -> String {
        let command = match self.caller == self.root {
            true => format!("./deploy/{script}"),
            false => format!("{}/deploy/{script}", self.root.display()),
        };
        match self.state == self.root.join("state") {
            true => command,
            false => format!("STATE_DIR={} {command}", self.state.display()),
        }
    }
}

/// `path` made absolute from `base` and normalised without touching the disk (`realpath -m -s`).
fn absolute(base: &Path, path: Option<PathBuf>, default: &Path) -> PathBuf {
    let path = path.map_or_else(|| default.to_path_buf(), |path| base.join(path));
    let mut clean = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    clean
}

fn number(name: &str, default: u32, max: u32, what: &str) -> anyhow::Result<u32> {
    let Some(text) = var(name) else {
        return Ok(default);
    };
    let value = text
        .parse::<u32>()
        .ok()
        .filter(|value| (1..=max).contains(value) && !text.starts_with(['0', '+']));
    value.with_context(|| format!("{name} must be {what}, not '{text}'"))
}

/// `DTM_PORT` and `DTM_GRPC_PORT` (8084 and 8085: not dtm's own 36789, which its bench server
/// cannot move off), each free of the others.
/// Its store is the single Redis: a dtm beside a Redis Cluster is not set up.
fn dtm_ports(seen: &mut BTreeMap<u16, String>, cluster: bool) -> anyhow::Result<DtmPorts> {
    ensure!(
        !cluster,
        "COORDINATOR=dtm keeps dtm's store in the single Redis: use it with REDIS_CLUSTER=0"
    );
    let mut ports = [0; 2];
    for (slot, (name, default)) in ports
        .iter_mut()
        .zip([("DTM_PORT", 8084), ("DTM_GRPC_PORT", 8085)])
    {
        *slot = port(name, default)?;
        if let Some(other) = seen.insert(*slot, name.to_owned()) {
            bail!("{name} and {other} are both {slot}: give each service its own port");
        }
    }
    Ok(DtmPorts {
        http: ports[0],
        grpc: ports[1],
    })
}

/// `REDIS_CLUSTER_PORTS`: six ports, each with its cluster bus (port + 10000) free of the others.
fn cluster_ports(seen: &mut BTreeMap<u16, String>) -> anyhow::Result<Vec<u16>> {
    let text = var("REDIS_CLUSTER_PORTS").unwrap_or_else(|| "7001-7006".to_owned());
    let mut nodes = Vec::new();
    for item in text.split([' ', ',']).filter(|item| !item.is_empty()) {
        let (first, last) = item.split_once('-').unwrap_or((item, item));
        let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) else {
            bail!(
                "REDIS_CLUSTER_PORTS: {item} is neither a port nor a range of ports such as \
                 7001-7006"
            );
        };
        ensure!(
            first <= last && last - first < 6,
            "REDIS_CLUSTER_PORTS: {item} is not a range of up to six ports"
        );
        for port in first..=last {
            let node = u16::try_from(port)
                .ok()
                .filter(|&p| (1..=55_535).contains(&p));
            let node = node.with_context(|| {
                format!(
                    "REDIS_CLUSTER_PORTS: {port} is not a port from 1 to 55535 (its cluster bus \
                     takes port + 10000)"
                )
            })?;
            nodes.push(node);
        }
    }
    ensure!(
        nodes.len() == 6,
        "REDIS_CLUSTER_PORTS={text} names {} ports: the cluster (three primaries, three replicas) \
         needs six",
        nodes.len()
    );
    for &node in &nodes {
        for value in [node, node + 10_000] {
            let what = format!("node {node} of REDIS_CLUSTER_PORTS (or its cluster bus)");
            if let Some(other) = seen.insert(value, what) {
                bail!(
                    "REDIS_CLUSTER_PORTS: port {value} (node {node} or its cluster bus) is also \
                     {other}"
                );
            }
        }
    }
    Ok(nodes)
}
