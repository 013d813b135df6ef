//! Config files of both services, read one way: TOML into the service's typed `Config`
//! (`serde_path_to_error` names the key of a value of the wrong type, with its line), then
//! [`ConfigFile::validate`], which reports every bad field at once. A refused file is a
//! [`ConfigError`], which the binaries print before they exit 64 (`process`).
//!
//! `problems` holds the list of bad fields and its one range check; `fields` the serde helpers of
//! typed fields (a `*_ms` key as a `Duration`, a string as any `FromStr` type).

pub mod fields;
mod problems;

use std::path::Path;

use serde::de::DeserializeOwned;

pub use problems::Problems;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

/// A service's typed config file: every field has a default, unknown fields are refused (both
/// are serde attributes on the type), and `validate` names every bad field.
pub trait ConfigFile: DeserializeOwned {
    /// Adds every bad field, by its key path, to `problems`.
    fn validate(&self, problems: &mut Problems);

    /// Every bad field, named, or an empty list.
    fn problems(&self) -> Vec<String> {
        let mut problems = Problems::default();
        self.validate(&mut problems);
        problems.into_vec()
    }

    /// Reads, parses and validates the file at `path`.
    fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates TOML text; `origin` names the source in errors.
    fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: parse_message(text, &e),
            })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                problems,
            })
        }
    }
}

/// "key.path: what is wrong (line L)": the key as a dotted path from the top of the file (a value
/// of the wrong type names its own key; an unknown key, the table it was found in).
fn parse_message(text: &str, error: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let inner = error.inner();
    let key = error.path().to_string();
    let message = inner.message().trim_end();
    let line = line_of(text, inner.span());
    if key.is_empty() || key == "." {
        format!("{message}{line}")
    } else {
        format!("{key}: {message}{line}")
    }
}

/// " (line L)" for a parse error's span, so an operator finds the line at once.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}
