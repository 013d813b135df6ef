//! The world of the edge's process tests (`tests/tests/edge_gateway/`): a [`Stack`] (Redis,
//! PostgreSQL, an origin) with edge processes in front of it, and the calls those tests make
//! through an edge — earn a pass, post JSON, buy.

use std::path::Path;

use serde_json::{json, Value};

use crate::{
    edge_process::{EdgeOptions, EdgeProcess},
    origin_process::OriginOptions,
    stack::Stack,
};

pub struct World {
    pub stack: Stack,
    pub edges: Vec<EdgeProcess>,
}

impl World {
    /// Starts the stack with the origin `origin_binary` and `edges` processes of `edge_binary`
    /// in front of it, all with `options`.
    pub async fn start(
        (origin_binary, edge_binary): (&Path, &Path),
        edges: usize,
        options: &EdgeOptions,
        origin: OriginOptions,
    ) -> anyhow::Result<Self> {
        let stack = Stack::start(origin_binary, origin).await?;
        let mut started = Vec::new();
        for _ in 0..edges {
            started.push(crate::front::start_edge(edge_binary, &stack, options).await?);
        }
        Ok(Self {
            stack,
            edges: started,
        })
    }

    pub fn edge(&self, i: usize) -> &EdgeProcess {
        &self.edges[i]
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.stack.http
    }

    /// Solves a captcha on `edge` for `token`'s user: the pass token.
    pub async fn pass(&self, edge: usize, token: &str, sale: i64) -> anyhow::Result<String> {
        let url = self.edge(edge).url();
        crate::shopper::pass_token(self.http(), &url, token, sale, None).await
    }

    /// POSTs `body` to `url` with the user JWT `token`: the status and the JSON answer.
    pub async fn post(
        &self,
        url: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http().post(url).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text)
            .map_err(|_| anyhow::anyhow!("not JSON: {status} {text}"))?;
        Ok((status, body))
    }

    /// A buy of `sale` on `edge` with `pass`, as the user of `token`.
    pub async fn buy(
        &self,
        edge: usize,
        token: Option<&str>,
        sale: i64,
        pass: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}/api/sales/{sale}/buy", self.edge(edge).url());
        self.post(&url, token, json!({"pass_token": pass})).await
    }
}
