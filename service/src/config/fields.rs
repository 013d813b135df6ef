//! Serde helpers of typed config fields, so that a value is parsed once, where it is read, and a
//! bad one is named by its key path and line like any other parse error:
//!
//! - `#[serde(rename = "timeout_ms", with = "service::config::fields::millis")]` reads a whole
//!   number of milliseconds into a `Duration` (the file keeps its `*_ms` keys);
//! - `#[serde(deserialize_with = "service::config::fields::parsed_list")]` reads a list of
//!   strings into any `FromStr` type (`ipnet::IpNet`, `http::Uri`), naming a bad value.

use std::{fmt::Display, str::FromStr};

use serde::{de::Error as _, Deserialize, Deserializer};

/// A `Duration` written as whole milliseconds.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A list of strings, each parsed with `FromStr`: a bad one is refused as `"value": why`.
pub fn parsed_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| parse(text).map_err(D::Error::custom))
        .collect()
}

fn parse<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.parse().map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, time::Duration};

    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Fields {
        #[serde(rename = "wait_ms", with = "super::millis")]
        wait: Duration,
        #[serde(deserialize_with = "super::parsed_list")]
        hosts: Vec<IpAddr>,
    }

    #[test]
    fn milliseconds_become_a_duration_and_strings_their_type() {
        let fields: Fields = toml::from_str("wait_ms = 250\nhosts = [\"::1\"]").unwrap();
        assert_eq!(fields.wait, Duration::from_millis(250));
        assert_eq!(fields.hosts, [IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])]);
        let err = toml::from_str::<Fields>("wait_ms = 1\nhosts = [\"::1\", \"nope\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"nope\": invalid IP address syntax"), "{err}");
    }
}
