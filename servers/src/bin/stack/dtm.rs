//! `COORDINATOR=dtm`: the launcher's dtm server (v1.19.0, `DTM_BIN` from `./deploy/up`), its
//! store in the stack's Redis under the prefix [`REDIS_PREFIX`], its config in
//! `<state>/dtm.yml`, kept running and recorded in `pids/dtm.pid`; `down` stops it by that pid.

use std::path::PathBuf;

use anyhow::Context;
use flash_servers::dtm_server::{self, DtmSettings, KeptDtm};
use flash_servers::kept::PidFile;

use crate::say::say;
use crate::settings::{DtmPorts, Settings};
use crate::up::require_free;

const SCRIPT: &str = "deploy/up";
/// The prefix of dtm's keys in the stack's Redis: a slot of its own, apart from the sales'.
pub const REDIS_PREFIX: &str = "{dtm}";

/// `<state>/dtm.yml`: what `dtm -c` reads, and what its command line names.
pub fn config_path(settings: &Settings) -> PathBuf {
    settings.state.join("dtm.yml")
}

/// Starts dtm unless it runs already; its API's URL.
pub async fn start(settings: &Settings, ports: DtmPorts) -> anyhow::Result<String> {
    let url = dtm_server::api_url(ports.http);
    let config = config_path(settings);
    let pid_file = PidFile::new(settings.pids().join("dtm.pid"));
    if let Some(pid) = pid_file.live(&config.to_string_lossy()) {
        say(
            SCRIPT,
            format!("dtm: already running (pid {pid}), left as is"),
        );
        return Ok(url);
    }
    require_free("dtm", ports.http, "DTM_PORT")?;
    require_free("dtm (gRPC)", ports.grpc, "DTM_GRPC_PORT")?;
    let log = settings.logs().join("dtm.log");
    let kept = KeptDtm {
        http_port: ports.http,
        grpc_port: ports.grpc,
        config: &config,
        log: &log,
    };
    let dtm = DtmSettings::new(settings.redis_port, REDIS_PREFIX);
    let pid = dtm_server::start_kept(&dtm, kept, &pid_file)
        .await
        .with_context(|| format!("dtm did not start (log: {})", settings.show(&log)))?;
    say(
        SCRIPT,
        format!(
            "dtm: started (pid {pid}) on 127.0.0.1:{}, store in redis under {REDIS_PREFIX}",
            ports.http
        ),
    );
    Ok(url)
}
