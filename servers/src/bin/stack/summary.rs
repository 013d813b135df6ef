//! What `up` prints at the end: every URL of the stack, how to reach each part, where the configs
//! and logs are, and how to stop it.

use std::path::Path;

use crate::configs::Configs;
use crate::demo::Sale;
use crate::settings::Settings;
use crate::up::configs_shown;

/// `dtm`: the API of the dtm server, when `COORDINATOR=dtm` started one.
pub fn print(
    settings: &Settings,
    configs: &Configs,
    origin_bin: &Path,
    sale: &Sale,
    dtm: Option<&str>,
) {
    let nginx = format!("http://127.0.0.1:{}", settings.nginx_port);
    let origin = format!("http://127.0.0.1:{}", settings.origin_port);
    let edge = format!("http://127.0.0.1:{}", settings.edge_port);
    let (id, pg) = (&sale.id, settings.pg_port);
    let (redis, redis_logs) = match &settings.cluster {
        Some(ports) => {
            let seeds: Vec<String> = ports
                .iter()
                .map(|port| format!("redis://127.0.0.1:{port}/"))
                .collect();
            let first = ports[0];
            let line = format!(
                "Redis Cluster  redis-cli -c -p {first}        nodes: redis-cli -p {first} cluster \
                 nodes\n               seeds {}",
                seeds.join(" ")
            );
            (line, "redis-cluster-<port>.log")
        }
        None => {
            let port = settings.redis_port;
            let line =
                format!("Redis          redis://127.0.0.1:{port}/        redis-cli -p {port}");
            (line, "redis.log")
        }
    };
    let show = |path: &Path| settings.show(path);
    let nginx_dir = show(&settings.nginx_dir());
    let lines = [
        String::new(),
        "==== the flash-sale stack is up".to_owned(),
        format!("open           {nginx}/sale/{id}      <- the sale page, through nginx"),
        format!("demo sale      {}", sale.answer.trim()),
        String::new(),
        format!("nginx          {nginx}            status: {nginx}/api/sales/{id}/status"),
        format!("origin API     {origin}            health: {origin}/healthz"),
        format!(
            "edge           {edge}            health: {edge}/healthz   metrics: \
             http://127.0.0.1:{}/metrics",
            settings.edge_admin_port
        ),
        format!("edge page      {edge}/sale/{id}      (the edge alone, without nginx)"),
        format!(
            "dev token      curl -s -X POST {nginx}/api/dev/token -H 'content-type: \
             application/json' -d '{{\"uid\":\"me\"}}'"
        ),
        format!(
            "payment hook   POST {nginx}/api/payments/webhook   signed with the key in {} \
             (docs/API.md)",
            show(&configs.payment_secret)
        ),
        redis,
        match dtm {
            Some(url) => format!("dtm            {url}   query: {url}/query?gid=<gid>"),
            None => "coordinator    embedded in the origin (COORDINATOR=dtm runs a dtm server)"
                .to_owned(),
        },
        format!("PostgreSQL     postgres://flash@127.0.0.1:{pg}/flash"),
        format!("               psql -h 127.0.0.1 -p {pg} -U flash flash"),
        format!(
            "reconcile      {} --config {} reconcile --sale {id}",
            show(origin_bin),
            show(&configs.origin)
        ),
        format!("configs        {}", configs_shown(settings, configs)),
        format!(
            "logs           {}/  ({redis_logs} postgres.log{} origin.log edge.log nginx.log)",
            show(&settings.logs()),
            if dtm.is_some() { " dtm.log" } else { "" }
        ),
        format!("               {nginx_dir}/access.log  {nginx_dir}/error.log"),
        format!(
            "stop           {}     (keeps the data; add --purge to delete {}/)",
            settings.command("down"),
            show(&settings.state)
        ),
    ];
    println!("{}", lines.join("\n"));
}
