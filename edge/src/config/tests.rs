//! The shipped file, the secrets, and the checks of bad fields and keys.

use super::*;

/// Random secrets (`openssl rand -base64 48`), as an SRE sets them.
const STRONG_KEY: &str = "kwXa7qdT53uYkzE5dFshI7OzT9hkie2aN06jd83EjIYc0/IwimVmdKTLSXyC1SE+";
const STRONG_CAPTCHA: &str = "PO3S0uFANDIaGNZEfQufUpswWZj8Q998nAMo3OQuhgHTxEqKaIIGDZ4uQeBPKaic";

/// The shipped file with its secrets set, as `./deploy/up` renders it.
fn shipped_with(key: &str, secret: &str, dev_mode: bool) -> String {
    include_str!("../../../deploy/edge.toml")
        .replace("key = \"\"", &format!("key = \"{key}\""))
        .replace("secret = \"\"", &format!("secret = \"{secret}\""))
        .replace("dev_mode = false", &format!("dev_mode = {dev_mode}"))
}

#[test]
fn shipped_file_is_valid_once_its_secrets_are_set() {
    let text = shipped_with(STRONG_KEY, STRONG_CAPTCHA, false);
    assert_ne!(text, include_str!("../../../deploy/edge.toml"));
    Config::parse(&text, "deploy/edge.toml").unwrap();
}

#[test]
fn the_shipped_file_as_is_is_refused_naming_both_secrets() {
    let err = Config::parse(
        include_str!("../../../deploy/edge.toml"),
        "deploy/edge.toml",
    )
    .unwrap_err()
    .to_string();
    for field in ["identity.key: ", "captcha.secret: "] {
        assert!(err.contains(field), "{err} should name {field}");
    }
}

#[test]
fn weak_secrets_are_refused_without_dev_mode_and_let_through_with_it() {
    let placeholder_key = "dev-only-user-jwt-secret-change-me-0123456789";
    let placeholder_captcha = "dev-only-captcha-secret-change-me-0123456789";
    let weak = shipped_with(placeholder_key, placeholder_captcha, false);
    let err = Config::parse(&weak, "t").unwrap_err().to_string();
    assert!(err.contains("identity.key: is a placeholder"), "{err}");
    assert!(err.contains("captcha.secret: is a placeholder"), "{err}");
    let dev = shipped_with(placeholder_key, placeholder_captcha, true);
    let config = Config::parse(&dev, "t").unwrap();
    assert_eq!(
        config.secrets(),
        vec![
            ("identity.key".to_string(), placeholder_key.to_string()),
            (
                "captcha.secret".to_string(),
                placeholder_captcha.to_string()
            )
        ]
    );
    // A key for a public-key algorithm is no secret.
    let mut eddsa = config;
    eddsa.identity.keys = Some(Keys::Static {
        algorithm: Algorithm::EdDSA,
        source: KeySource::Inline("a PEM".into()),
    });
    assert_eq!(eddsa.secrets().len(), 1);
}

#[test]
fn an_hs256_key_file_is_checked_too() {
    let dir = tempfile_dir();
    let path = dir.join("user-jwt.key");
    std::fs::write(&path, "dev-only-user-jwt-secret-change-me-0123456789\n").unwrap();
    let text = shipped_with(STRONG_KEY, STRONG_CAPTCHA, false).replace(
        &format!("key = \"{STRONG_KEY}\""),
        &format!("key_file = \"{}\"", path.display()),
    );
    let err = Config::parse(&text, "t").unwrap_err().to_string();
    assert!(err.contains("identity.key_file: is a placeholder"), "{err}");
    std::fs::write(&path, format!("{STRONG_KEY}\n")).unwrap();
    Config::parse(&text, "t").unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A fresh folder under the temp dir (the edge has no tempfile dependency).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "edge-config-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_bad_field_is_named_at_once() {
    let text = "[captcha]\nsecret = \"short\"\npass_ttl_seconds = 500\n[limits.global]\nper_second = 10\nlease = 20\n";
    let err = Config::parse(text, "t").unwrap_err().to_string();
    for field in [
        "captcha.secret",
        "captcha.pass_ttl_seconds",
        "limits.global.lease",
        "identity.key",
    ] {
        assert!(err.contains(field), "{err} should name {field}");
    }
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_its_key_path_and_line() {
    let check = |text: &str, expected: &[&str]| {
        let err = Config::parse(text, "t").unwrap_err().to_string();
        for part in expected {
            assert!(err.contains(part), "{err} should contain {part}");
        }
    };
    check(
        "[limits.ip]\nburst = 3\nper_second = \"x\"\n",
        &["limits.ip.per_second", "line 3"],
    );
    check(
        "[origin]\nurls = \"http://127.0.0.1:1\"\n",
        &["origin.urls", "line 2"],
    );
    check(
        "[captcha]\nlevels = [{ from_rate = 0, difficulty = \"hard\", image = false }]\n",
        &["captcha.levels[0].difficulty", "line 2"],
    );
    check("[admin]\nlisten = 9081\n", &["admin.listen", "line 2"]);
}

#[test]
fn admin_listen_must_be_loopback() {
    let base =
        format!("[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n");
    for (listen, ok) in [
        ("127.0.0.1:9081", true),
        ("127.0.0.2:9081", true),
        ("[::1]:9081", true),
        ("0.0.0.0:9081", false),
        ("10.0.0.5:9081", false),
        ("[::]:9081", false),
    ] {
        let text = format!("{base}[admin]\nlisten = \"{listen}\"\n");
        match Config::parse(&text, "t") {
            Ok(_) => assert!(ok, "{listen} must be refused"),
            Err(e) => {
                assert!(!ok, "{listen}: {e}");
                assert!(e.to_string().contains("admin.listen"), "{e}");
            }
        }
    }
}

#[test]
fn sold_out_status_is_cached_at_least_as_long_as_the_live_one() {
    let mut config = Config::default();
    let named = |c: &Config| {
        c.problems()
            .iter()
            .any(|p| p.starts_with("pages.sold_out_max_age_seconds"))
    };
    assert!(!named(&config), "the default holds");
    config.pages.status_max_age_seconds = 3;
    config.pages.sold_out_max_age_seconds = 2;
    assert!(named(&config), "{:?}", config.problems());
    config.pages.sold_out_max_age_seconds = 3;
    assert!(!named(&config));
}

#[test]
fn each_previous_captcha_secret_is_validated_like_the_secret() {
    let base =
        &format!("[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n");
    let config = Config::parse(base, "t").unwrap();
    assert!(
        config.captcha.previous_secrets.is_empty(),
        "none by default"
    );
    let good = "Le7rq0i1MPcRiITYtf0o9ZNgO98AOkkIUoBvrRNEb4QHQGqd";
    let text = format!("{base}previous_secrets = [\"{good}\", \"{STRONG_KEY}\"]\n");
    let config = Config::parse(&text, "t").unwrap();
    assert_eq!(config.captcha.previous_secrets.len(), 2);
    let text = format!("{base}previous_secrets = [\"{good}\", \"short\"]\n");
    let err = Config::parse(&text, "t").unwrap_err().to_string();
    assert!(err.contains("captcha.previous_secrets[1]"), "{err}");
    assert!(!err.contains("captcha.previous_secrets[0]"), "{err}");
    // Held to the secret's standard: a long placeholder is refused too.
    let text = format!(
        "{base}previous_secrets = [\"dev-only-old-captcha-secret-change-me-0123456789\"]\n"
    );
    let err = Config::parse(&text, "t").unwrap_err().to_string();
    assert!(
        err.contains("captcha.previous_secrets[0]: is a placeholder"),
        "{err}"
    );
}

#[test]
fn payments_checkout_url_and_dev_secret_are_checked() {
    let base = &format!("[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n[payments]\n");
    for (payments, ok) in [
        ("", true),
        (
            "checkout_url = \"https://shop.example/checkout?order={order}&return={return}\"",
            true,
        ),
        ("checkout_url = \"http://127.0.0.1:9/pay/{order}\"", true),
        ("checkout_url = \"https://shop.example/checkout\"", false),
        ("checkout_url = \"javascript:alert(1)//{order}\"", false),
        (
            "checkout_url = \"https://shop.example/{order}/{uid}\"",
            false,
        ),
        ("checkout_url = \"https://shop example/{order}\"", false),
        (
            "dev_webhook_secret = \"0123456789abcdef0123456789abcdef\"",
            true,
        ),
        ("dev_webhook_secret = \"short\"", false),
    ] {
        let field = payments.split(' ').next().unwrap_or_default();
        match Config::parse(&format!("{base}{payments}\n"), "t") {
            Ok(_) => assert!(ok, "{payments} must be refused"),
            Err(e) => {
                assert!(!ok, "{payments}: {e}");
                assert!(e.to_string().contains(&format!("payments.{field}")), "{e}");
            }
        }
    }
}

#[test]
fn unknown_field_is_refused_with_its_line() {
    let err = Config::parse("[limits.ip]\nper_second = 1.0\nbrust = 3\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("brust") && err.contains("line 3"), "{err}");
}

#[test]
fn typed_fields_name_a_bad_value_by_its_key_and_line() {
    let check = |text: &str, expected: &[&str]| {
        let err = Config::parse(text, "t").unwrap_err().to_string();
        for part in expected {
            assert!(err.contains(part), "{err} should contain {part}");
        }
    };
    check(
        "[identity]\nkey = \"k\"\nkey_file = \"/etc/k\"\n",
        &["identity: set exactly one of identity.key, identity.key_file and identity.jwks_url"],
    );
    check(
        "[http]\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/33\"]\n",
        &["http.trusted_proxies: \"10.0.0.0/33\"", "line 2"],
    );
    check(
        "[origin]\nurls = [\"http://o 1\"]\n",
        &["origin.urls: \"http://o 1\"", "line 2"],
    );
    check(
        &format!("[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n[origin]\nurls = [\"https://o:1\"]\ntimeout_ms = 0\n"),
        &["origin.urls: must list at least one http:// URL", "origin.timeout_ms: must be between 1 and 60000"],
    );
}

#[test]
fn durations_keep_their_millisecond_keys() {
    let text = format!(
        "[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n[origin]\ntimeout_ms = 1500\n[http.connections]\nidle_timeout_ms = 90000\n"
    );
    let config = Config::parse(&text, "t").unwrap();
    assert_eq!(
        config.origin.timeout,
        std::time::Duration::from_millis(1500)
    );
    assert_eq!(
        config.http.connections.idle_timeout,
        std::time::Duration::from_secs(90)
    );
}

#[test]
fn provider_keys_cookie_and_origins_are_read_and_checked() {
    let captcha = format!("[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n");
    let text = format!(
        "[identity]\njwks_url = \"https://login.shop.example/jwks\"\njwks_refetch_seconds = 5\n\
         issuer = \"https://login.shop.example\"\naudience = \"flash\"\ncookie = \"shop_session\"\n\
         allowed_origins = [\"https://shop.example\", \"HTTP://Sale.Shop.Example:8080/\"]\n\
         login_url = \"https://shop.example/login\"\n{captcha}"
    );
    let config = Config::parse(&text, "t").unwrap();
    let Some(Keys::Jwks(jwks)) = &config.identity.keys else {
        panic!("{:?}", config.identity.keys)
    };
    assert_eq!(jwks.url.as_str(), "https://login.shop.example/jwks");
    assert_eq!(jwks.refetch, std::time::Duration::from_secs(5));
    assert_eq!(jwks.refresh, std::time::Duration::from_secs(300));
    assert_eq!(
        config.identity.allowed_origins,
        ["https://shop.example", "http://sale.shop.example:8080"]
    );
    assert!(config
        .secrets()
        .iter()
        .all(|(field, _)| !field.starts_with("identity")));
    let refused = |text: String, expected: &str| {
        let err = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains(expected), "{err} should contain {expected}");
    };
    refused(
        text.replace("jwks_refetch_seconds = 5", "algorithm = \"RS256\""),
        "identity.algorithm: with jwks_url each key names its algorithm",
    );
    refused(
        text.replace(
            "jwks_refetch_seconds = 5",
            &format!("key = \"{STRONG_KEY}\""),
        ),
        "set exactly one of identity.key, identity.key_file and identity.jwks_url",
    );
    refused(
        text.replace("https://shop.example\", ", "https://shop.example/path\", "),
        "identity.allowed_origins \"https://shop.example/path\": must be an http(s) origin",
    );
    refused(
        text.replace(
            "allowed_origins = [\"https://shop.example\", \"HTTP://Sale.Shop.Example:8080/\"]",
            "",
        ),
        "identity.allowed_origins: must list the origins of the sale page",
    );
    refused(
        text.replace("jwks_refetch_seconds = 5", "jwks_refetch_seconds = 0"),
        "identity.jwks_refetch_seconds",
    );
    refused(
        text.replace("https://login.shop.example/jwks", "not a url"),
        "identity.jwks_url \"not a url\"",
    );
    refused(
        text.replace("cookie = \"shop_session\"", "cookie = \"a;b\""),
        "identity.cookie",
    );
}
