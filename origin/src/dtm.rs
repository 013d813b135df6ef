//! The origin as a client of a dtm server (`[coordinator] kind = "dtm"`): a winner's purchase is
//! one dtm two-phase message (`msg`), prepared before its reservation and submitted after it. The
//! message has one step, this origin's branch endpoint, and its back-check is this origin's query
//! endpoint (`api::dtm`); dtm calls both at `coordinator.callback_url`. dtm answers 200 for
//! success and puts `FAILURE` in the body of a refusal (v1.19, `dtmutil.WrapHandler2`).

mod gid;

use std::time::Duration;

use serde::Serialize;

pub use self::gid::{MessageGid, ParseMessageGidError};
use crate::{
    config::CoordinatorConfig,
    error::{Error, Result},
};

/// The path of the branch endpoint dtm calls (`POST`, payload as body).
pub const BRANCH_PATH: &str = "/v1/dtm/branch";
/// The path of the back-check endpoint dtm calls (`GET`).
pub const QUERY_PATH: &str = "/v1/dtm/query";

/// A dtm server, as `[coordinator]` names it.
#[derive(Debug, Clone)]
pub struct Dtm {
    http: reqwest::Client,
    api: String,
    branch_url: String,
    query_url: String,
    timeout_to_fail: u32,
    retry_interval: u32,
}

/// The branch's payload: the purchase the message is for (checked against the gid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BranchPayload {
    pub sale: i64,
    pub uid: String,
}

/// A `msg` as dtm's `/prepare` and `/submit` read it (`dtmimp.TransBase`).
#[derive(Serialize)]
struct Message<'a> {
    gid: String,
    trans_type: &'static str,
    steps: [Step<'a>; 1],
    payloads: [String; 1],
    query_prepared: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    timeout_to_fail: u32,
    #[serde(skip_serializing_if = "is_zero")]
    retry_interval: u32,
}

#[derive(Serialize)]
struct Step<'a> {
    action: &'a str,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Dtm {
    /// The client of `config`'s dtm server (its URLs were validated with the config).
    pub fn new(config: &CoordinatorConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(1)))
            .build()
            .map_err(|e| Error::dtm("client", e))?;
        let callback = config.callback_url.trim_end_matches('/');
        Ok(Self {
            http,
            api: config.dtm_url.trim_end_matches('/').to_string(),
            branch_url: format!("{callback}{BRANCH_PATH}"),
            query_url: format!("{callback}{QUERY_PATH}"),
            timeout_to_fail: config.timeout_to_fail_seconds,
            retry_interval: config.retry_interval_seconds,
        })
    }

    /// Phase 0: dtm records the message as `prepared` (and back-checks it if no submit follows).
    pub async fn prepare(&self, message: &MessageGid) -> Result<()> {
        self.call("prepare", message).await
    }

    /// dtm records the message as `submitted` and calls its branch.
    pub async fn submit(&self, message: &MessageGid) -> Result<()> {
        self.call("submit", message).await
    }

    /// dtm records a prepared message as `failed`: its reservation was never made.
    pub async fn abort(&self, message: &MessageGid) -> Result<()> {
        self.call("abort", message).await
    }

    async fn call(&self, what: &'static str, message: &MessageGid) -> Result<()> {
        let payload = BranchPayload {
            sale: message.gid.sale,
            uid: message.gid.uid.clone(),
        };
        let body = Message {
            gid: message.to_string(),
            trans_type: "msg",
            steps: [Step {
                action: &self.branch_url,
            }],
            payloads: [serde_json::to_string(&payload).map_err(|e| Error::dtm(what, e))?],
            query_prepared: &self.query_url,
            timeout_to_fail: self.timeout_to_fail,
            retry_interval: self.retry_interval,
        };
        let answer = self
            .http
            .post(format!("{}/{what}", self.api))
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::dtm(what, e))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| Error::dtm(what, e))?;
        if status.is_success() && !text.contains("FAILURE") {
            Ok(())
        } else {
            Err(Error::dtm(what, format!("{status}: {text}")))
        }
    }
}
