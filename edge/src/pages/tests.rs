//! The page's HTML, and its assets named by content: the script's one version over all its
//! modules.

use super::*;
use time::macros::datetime;

/// Sale 7, starting 2026-11-22 18:00 UTC, in EUR.
fn sale(name: &str, stock: i64, price_cents: i64) -> SaleInfo {
    SaleInfo {
        id: 7,
        name: name.into(),
        stock,
        remaining: Some(stock),
        starts_at: datetime!(2026-11-22 18:00 UTC),
        ends_at: None,
        hold_seconds: 600,
        price_cents,
        currency: "EUR".into(),
    }
}

#[test]
fn page_shows_the_sale_and_escapes_its_name() {
    let info = sale("<script>alert(1)</script> Sneakers", 300, 12900);
    let html = sale_page(
        &info,
        datetime!(2026-11-22 17:00 UTC),
        false,
        Links::default(),
    )
    .unwrap();
    assert!(html.contains("129.00 EUR"), "{html}");
    assert!(html.contains("data-sale=\"7\""));
    assert!(html.contains("2026-11-22 18:00:00 UTC"));
    assert!(html.contains("data-state=\"upcoming\""));
    assert!(
        !html.contains("<script>alert(1)"),
        "the name must be escaped"
    );
}

#[test]
fn page_names_its_assets_by_content_and_has_nothing_inline() {
    let info = SaleInfo {
        remaining: Some(0),
        ends_at: Some(datetime!(2026-11-22 19:00 UTC)),
        ..sale("Sneakers", 3, 5)
    };
    let links = Links {
        checkout_url: "https://shop.example/checkout?order={order}&return={return}",
        ..Links::default()
    };
    let html = sale_page(&info, datetime!(2026-11-22 18:30 UTC), true, links).unwrap();
    assert!(
        html.contains(
            "data-checkout=\"https://shop.example/checkout?order={order}&#38;return={return}\""
        ) || html.contains(
            "data-checkout=\"https://shop.example/checkout?order={order}&amp;return={return}\""
        ),
        "{html}"
    );
    assert!(html.contains("data-dev-pay=\"false\""), "{html}");
    assert!(
        html.contains("data-login=\"\""),
        "no login URL configured: {html}"
    );
    assert!(html.contains("data-dev-login=\"false\""), "{html}");
    let modules = modules_content(SCRIPT_MODULES);
    for (path, content) in [
        ("/static/sale/main.js", modules.as_slice()),
        ("/static/sale.css", SALE_CSS),
        ("/static/pow-worker.js", POW_WORKER_JS),
        ("/static/favicon.svg", FAVICON_SVG),
    ] {
        let hash: String = Sha256::digest(content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let url = format!("{path}?v={}", &hash[..12]);
        assert!(html.contains(&format!("\"{url}\"")), "{url} in {html}");
    }
    assert!(html.contains("data-state=\"sold_out\""));
    assert!(html.contains("data-ends-at=\"2026-11-22T19:00:00Z\""));
    assert!(html.contains("data-server-time=\"2026-11-22T18:30:00Z\""));
    assert!(html.contains("0.05 EUR"), "{html}");
    // The CSP allows no inline script or style: every script has a src, nothing has style=.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(
        html.contains("<script type=\"module\" src=\"/static/sale/main.js?v="),
        "{html}"
    );
    assert!(!html.contains("style="), "{html}");
    assert!(!html.contains("<style"), "{html}");
    assert!(
        !html
            .split_whitespace()
            .any(|word| word.starts_with("on") && word.contains('=')),
        "no inline event handler: {html}"
    );
}

#[test]
fn the_login_link_comes_from_the_config_only() {
    let page = |config: &Config| {
        let html = sale_page(
            &sale("Sneakers", 3, 5),
            datetime!(2026-11-22 17:00 UTC),
            false,
            Links::from_config(config),
        )
        .unwrap();
        let login = html
            .split("data-login=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        (login, html)
    };
    let mut config = Config::default();
    let (login, html) = page(&config);
    assert_eq!(login, "", "{html}");
    assert!(html.contains("data-dev-login=\"false\""), "{html}");
    config.http.dev_mode = true;
    let (_, html) = page(&config);
    assert!(html.contains("data-dev-login=\"true\""), "{html}");
    config.http.dev_mode = false;
    // The link is there, hidden, for the script to show to a logged-out visitor.
    assert!(
        html.contains("<a id=\"login\" class=\"buy\" href=\"\" hidden>Log in to buy</a>"),
        "{html}"
    );
    config.identity.login_url = Some(
        "https://shop.example/login?from=sale&x=\"y"
            .parse()
            .unwrap(),
    );
    let (login, html) = page(&config);
    assert!(
        login == "https://shop.example/login?from=sale&#38;x=%22y"
            || login == "https://shop.example/login?from=sale&amp;x=%22y",
        "{login} in {html}"
    );
}

#[test]
fn every_script_module_is_in_the_version() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/sale");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".js"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = SCRIPT_MODULES.iter().map(|(name, _)| *name).collect();
    assert_eq!(listed, on_disk, "SCRIPT_MODULES must list static/sale/*.js");
    for (name, content) in SCRIPT_MODULES {
        let text = std::str::from_utf8(content).unwrap();
        // A static import would drop the version (see main.js): siblings come by import().
        assert!(
            !text.lines().any(|line| line.starts_with("import ")),
            "{name} has a static import"
        );
        for sibling in text.split("`./").skip(1) {
            let file = sibling.split('$').next().unwrap();
            assert!(
                sibling.starts_with(&format!("{file}${{v}}`")),
                "{name}: {file} without the version"
            );
            assert!(
                listed.contains(&file),
                "{name} imports {file}, not a module"
            );
        }
    }
}

#[test]
fn the_script_version_covers_every_module() {
    let changed: Vec<(&str, &[u8])> = SCRIPT_MODULES
        .iter()
        .map(|&(name, content)| (name, if name == "time.js" { b"x" } else { content }))
        .collect();
    assert_ne!(
        versioned("/s", &modules_content(SCRIPT_MODULES)),
        versioned("/s", &modules_content(&changed))
    );
    // Bytes moved from one module to the next change it too.
    assert_ne!(
        modules_content(&[("a.js", b"ab"), ("b.js", b"c")]),
        modules_content(&[("a.js", b"a"), ("b.js", b"bc")])
    );
}

#[test]
fn versions_change_with_the_content() {
    let a = versioned("/static/a.js", b"one");
    let b = versioned("/static/a.js", b"two");
    assert_ne!(a, b);
    assert_eq!(a.len(), "/static/a.js?v=".len() + VERSION_CHARS);
    assert!(a[a.len() - VERSION_CHARS..]
        .bytes()
        .all(|c| c.is_ascii_hexdigit()));
}
