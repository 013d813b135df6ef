//! `stack up`: the state folder, then each service that does not run yet, in order (Redis or the
//! Redis Cluster, PostgreSQL, dtm with `COORDINATOR=dtm`, the origin, the edge, the demo sale, nginx in front), every process
//! kept and recorded in `pids/`; a port taken by another process is refused with the setting that
//! moves it; at the end the summary of every URL.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use flash_servers::kept::{self, PidFile, Service};
use flash_servers::nginx_server::{self, KeptNginx};
use flash_servers::redis_cluster::{self, KeptNode};
use flash_servers::{postgres_server, redis_server::RedisServer};

use crate::configs::{self, Configs};
use crate::say::{header, say, warn};
use crate::settings::Settings;
use crate::{demo, dtm, lock, summary};

const SCRIPT: &str = "deploy/up";

pub async fn run(root: PathBuf) -> anyhow::Result<()> {
    let settings = Settings::load(root)?;
    let origin_bin = settings.release.join("origin");
    let edge_bin = settings.release.join("edge");
    for binary in [&origin_bin, &edge_bin] {
        if !binary.is_file() {
            bail!("cargo built no {}", binary.display());
        }
    }
    for dir in [
        settings.logs(),
        settings.pids(),
        settings.state.join("redis"),
        settings.pg_dir(),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(settings.mark(), "")?;
    let _lock = lock::take(&settings.state, &settings.show(&settings.state))?;
    header(
        SCRIPT,
        format!(
            "starting services (state folder: {}/)",
            settings.show(&settings.state)
        ),
    );

    match &settings.cluster {
        Some(ports) => start_cluster(&settings, ports).await?,
        None => start_redis(&settings).await?,
    }
    start_postgres(&settings).await?;
    let dtm = match settings.dtm {
        Some(ports) => Some(dtm::start(&settings, ports).await?),
        None => None,
    };
    let configs = configs::render(&settings)?;
    let origin_url = format!("http://127.0.0.1:{}", settings.origin_port);
    let services = [
        (
            "origin",
            &origin_bin,
            &configs.origin,
            &["serve"][..],
            settings.origin_port,
            "ORIGIN_PORT",
        ),
        (
            "edge",
            &edge_bin,
            &configs.edge,
            &[][..],
            settings.edge_port,
            "EDGE_PORT",
        ),
    ];
    for (name, binary, config, args, port, setting) in services {
        start_service(
            &settings,
            name,
            Service {
                binary,
                config,
                args,
                log: &settings.logs().join(format!("{name}.log")),
                health: &format!("http://127.0.0.1:{port}/healthz"),
            },
            setting,
            port,
        )
        .await?;
    }
    let sale = demo::ensure(&settings, &origin_url).await?;
    start_nginx(&settings).await?;
    summary::print(&settings, &configs, &origin_bin, &sale, dtm.as_deref());
    Ok(())
}

/// `stack nginx-check`: the config as `up` renders it, checked with `nginx -t` in a temp prefix.
pub async fn nginx_check(root: PathBuf) -> anyhow::Result<()> {
    let settings = Settings::load(root)?;
    let output = nginx_server::check_deploy_config(&nginx_settings(&settings)?.0).await?;
    println!("{}", output.trim_end());
    Ok(())
}

/// Refuses a port that something already listens on.
pub fn require_free(name: &str, port: u16, setting: &str) -> anyhow::Result<()> {
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        bail!(
            "{name}: port {port} on 127.0.0.1 is taken by another process: stop it, or choose \
             another port with {setting}=..."
        );
    }
    Ok(())
}

fn pid_file(settings: &Settings, name: &str) -> PidFile {
    PidFile::new(settings.pids().join(format!("{name}.pid")))
}

async fn start_redis(settings: &Settings) -> anyhow::Result<()> {
    let pid_file = pid_file(settings, "redis");
    if let Some(pid) = pid_file.live("redis-server") {
        say(
            SCRIPT,
            format!("redis: already running (pid {pid}), left as is"),
        );
        return Ok(());
    }
    let port = settings.redis_port;
    require_free("redis", port, "REDIS_PORT")?;
    let log = settings.logs().join("redis.log");
    let pid = RedisServer::start_kept(&settings.state.join("redis"), port, &log)
        .await
        .with_context(|| format!("redis (log: {})", settings.show(&log)))?;
    pid_file.write(pid)?;
    say(
        SCRIPT,
        format!("redis: started (pid {pid}) on 127.0.0.1:{port}"),
    );
    Ok(())
}

async fn start_cluster(settings: &Settings, ports: &[u16]) -> anyhow::Result<()> {
    if let Some(pid) = pid_file(settings, "redis").live("redis-server") {
        warn(
            SCRIPT,
            format!(
            "redis: the single redis-server of an earlier run still runs (pid {pid}), unused: the \
             services now use the cluster"
        ),
        );
    }
    let mut nodes = Vec::new();
    for &port in ports {
        let running = pid_file(settings, &format!("redis-cluster-{port}")).live("redis-server");
        match running {
            Some(pid) => say(
                SCRIPT,
                format!("redis cluster: node {port} already running (pid {pid}), left as is"),
            ),
            None => {
                require_free("redis cluster node", port, "REDIS_CLUSTER_PORTS")?;
                let bus = format!("the cluster bus of redis node {port}");
                require_free(&bus, port + 10_000, "REDIS_CLUSTER_PORTS")?;
            }
        }
        let dir = settings.state.join("redis-cluster").join(port.to_string());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = settings.logs().join(format!("redis-cluster-{port}.log"));
        nodes.push(KeptNode {
            port,
            dir,
            log,
            running,
        });
    }
    let cluster = redis_cluster::start_kept(&nodes, kept::START_DEADLINE).await?;
    for &(port, pid) in &cluster.started {
        pid_file(settings, &format!("redis-cluster-{port}")).write(pid)?;
        say(
            SCRIPT,
            format!("redis cluster: node {port} started (pid {pid}) on 127.0.0.1:{port}"),
        );
    }
    match cluster.created {
        Some(output) => {
            let log = settings.logs().join("redis-cluster-create.log");
            std::fs::write(&log, output)?;
            say(SCRIPT, format!("redis cluster: created (log: {})", settings.show(&log)));
        }
        None => say(SCRIPT, "redis cluster: exists (its nodes know each other from their nodes.conf), not created again"),
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    say(
        SCRIPT,
        format!(
            "redis cluster: ok on {} (3 primaries with a replica each, all 16384 slots served)",
            list.join(" ")
        ),
    );
    Ok(())
}

async fn start_postgres(settings: &Settings) -> anyhow::Result<()> {
    let (dir, port) = (settings.pg_dir(), settings.pg_port);
    let log = settings.logs().join("postgres.log");
    if postgres_server::running_pid(&dir.join("data")).is_none() {
        require_free("postgres", port, "PG_PORT")?;
    }
    let pg = postgres_server::start_kept(&dir, port, &log)
        .await
        .with_context(|| format!("postgres (log: {})", settings.show(&log)))?;
    if pg.initdb {
        let user = pg
            .user
            .map(|user| format!(" (as user {user})"))
            .unwrap_or_default();
        say(
            SCRIPT,
            format!(
                "postgres: created a cluster in {}{user}",
                settings.show(&dir.join("data"))
            ),
        );
    }
    match pg.reused {
        true => say(
            SCRIPT,
            format!("postgres: already running (pid {}), left as is", pg.pid),
        ),
        false => say(
            SCRIPT,
            format!("postgres: started (pid {}) on 127.0.0.1:{port}", pg.pid),
        ),
    }
    if pg.created_database {
        say(SCRIPT, "postgres: created database flash");
    }
    // For reference only: `down` stops PostgreSQL by its postmaster.pid.
    pid_file(settings, "postgres").write(pg.pid)
}

async fn start_service(
    settings: &Settings,
    name: &str,
    service: Service<'_>,
    setting: &str,
    port: u16,
) -> anyhow::Result<()> {
    let pid_file = pid_file(settings, name);
    if let Some(pid) = pid_file.live(&service.config.to_string_lossy()) {
        say(
            SCRIPT,
            format!(
                "{name}: already running (pid {pid}), left as is (to run a new build: {}, then up)",
                settings.command("down")
            ),
        );
        return Ok(());
    }
    require_free(name, port, setting)?;
    let pid = kept::start_service(service, &pid_file)
        .await
        .with_context(|| {
            format!(
                "{name} did not start (log: {}; {} stops what started)",
                settings.show(service.log),
                settings.command("down")
            )
        })?;
    say(
        SCRIPT,
        format!("{name}: started (pid {pid}) on 127.0.0.1:{port}"),
    );
    Ok(())
}

/// The nginx settings of `up`, and a warning about the workers' user, if any.
fn nginx_settings(settings: &Settings) -> anyhow::Result<(nginx_server::Settings, Option<String>)> {
    let (prefix, static_root) = (settings.nginx_dir(), settings.root.join("static"));
    for dir in [&prefix, &static_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let edges = [format!("127.0.0.1:{}", settings.edge_port)];
    let (mut nginx, warning) = nginx_server::Settings::for_deploy(
        &prefix,
        settings.nginx_port,
        &edges,
        &static_root,
        &settings.trusted_cdn,
    );
    nginx.template = settings.root.join("nginx/nginx.conf.template");
    Ok((nginx, warning))
}

async fn start_nginx(settings: &Settings) -> anyhow::Result<()> {
    let (nginx, warning) = nginx_settings(settings)?;
    if let Some(warning) = warning {
        warn(SCRIPT, format!("nginx: {warning}"));
    }
    let pid_file = pid_file(settings, "nginx");
    if pid_file
        .live(&nginx.prefix.join("nginx.conf").to_string_lossy())
        .is_none()
    {
        require_free("nginx", settings.nginx_port, "NGINX_PORT")?;
    }
    let log = settings.logs().join("nginx.log");
    let port = settings.nginx_port;
    match nginx_server::start_kept(&nginx, &log, &pid_file).await? {
        KeptNginx::Started(pid) => say(
            SCRIPT,
            format!("nginx: started (pid {pid}) on 127.0.0.1:{port}"),
        ),
        KeptNginx::Unchanged(pid) => say(
            SCRIPT,
            format!("nginx: already running (pid {pid}), left as is"),
        ),
        KeptNginx::Reloaded(pid) => say(
            SCRIPT,
            format!("nginx: already running (pid {pid}), config changed: reloaded (SIGHUP)"),
        ),
    }
    Ok(())
}

/// Only for the summary: where the configs are.
pub fn configs_shown(settings: &Settings, configs: &Configs) -> String {
    let nginx = settings.nginx_dir().join("nginx.conf");
    [
        configs.origin.as_path(),
        configs.edge.as_path(),
        nginx.as_path(),
    ]
    .map(|path: &Path| settings.show(path))
    .join("  ")
}
