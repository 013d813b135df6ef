//! The shipped file against the defaults, and the checks of bad fields and keys.

use super::*;

/// A key as `openssl rand -base64 36` makes one.
pub(crate) const KEY: &str = "CktOb6zNA57kb+FcGF2eYWw4lXjtQcaFnfQGppyuSqGSQW3F";

#[test]
fn shipped_file_is_valid_and_matches_the_defaults() {
    // The webhook secret ships empty (the origin refuses to start on it): set one to compare.
    let text = include_str!("../../../deploy/origin.toml").replace(
        "webhook_secret = \"\"",
        &format!("webhook_secret = \"{KEY}\""),
    );
    let shipped = Config::parse(&text, "deploy/origin.toml").unwrap();
    let mut defaults = Config::default();
    defaults
        .payments
        .webhook_secret
        .clone_from(&shipped.payments.webhook_secret);
    assert_eq!(format!("{shipped:?}"), format!("{defaults:?}"));
}

#[test]
fn every_bad_field_is_named_at_once() {
    let text =
        "[http]\nbody_limit_bytes = 1\n[recovery]\nbatch = 0\nlease_ms = 100\nmax_lease_ms = 50\n";
    let err = Config::parse(text, "t").unwrap_err().to_string();
    for field in [
        "http.body_limit_bytes",
        "recovery.batch",
        "recovery.max_lease_ms",
        "payments.webhook_secret",
    ] {
        assert!(err.contains(field), "{err} should name {field}");
    }
}

#[test]
fn webhook_secrets_are_at_least_32_bytes_and_the_tolerance_bounded() {
    let key = KEY;
    let check = |payments: &str, bad: &[&str]| {
        let problems = match Config::parse(&format!("[payments]\n{payments}"), "t") {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("{e}"),
        };
        for field in bad {
            assert!(
                problems.iter().any(|p| p.starts_with(field)),
                "{payments}: {problems:?} should name {field}"
            );
        }
        assert_eq!(problems.len(), bad.len(), "{payments}: {problems:?}");
    };
    check(&format!("webhook_secret = \"{key}\"\n"), &[]);
    check("webhook_secret = \"short\"\n", &["payments.webhook_secret"]);
    check(
        &format!("webhook_secret = \"{key}\"\nprevious_webhook_secrets = [\"{key}\", \"old\"]\n"),
        &["payments.previous_webhook_secrets[1]"],
    );
    check(
        &format!("webhook_secret = \"{key}\"\ntolerance_seconds = 0\n"),
        &["payments.tolerance_seconds"],
    );
}

#[test]
fn unknown_field_is_refused_with_its_line() {
    let err = Config::parse("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lisen") && err.contains("line 3"), "{err}");
}
