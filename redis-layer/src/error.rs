//! The one failure type of the layer: what was asked of Redis, and why it failed.

/// A Redis command or script that failed. Always the upstream's fault from a caller's view:
/// services answer 503.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis answered an error, or the connection broke.
    #[error("redis {what}: {source}")]
    Redis {
        what: &'static str,
        source: redis::RedisError,
    },
    /// No answer within the command timeout.
    #[error("redis {0} timed out")]
    Timeout(&'static str),
    /// The first connection could not be made (`target`: the url or the seed nodes).
    #[error("redis {target}: {problem}")]
    Connect { target: String, problem: String },
}

impl Error {
    /// `map_err` adapter naming the operation.
    pub fn redis(what: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Redis { what, source }
    }
}
