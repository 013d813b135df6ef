//! Where the token comes from: the `Authorization` header, else the login's cookie, and the
//! CSRF rule of cookie-borne tokens on state-changing requests.

use axum::http::{HeaderMap, Method};

use super::*;

const SHOP: &str = "https://shop.example";

fn cookie_verifier() -> Verifier {
    let mut cfg = config(Algorithm::HS256, SECRET);
    cfg.cookie = Some("shop_session".into());
    cfg.allowed_origins = vec![SHOP.into()];
    build(&cfg).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
        .collect()
}

async fn got(v: &Verifier, method: Method, pairs: &[(&str, &str)]) -> Result<Via, &'static str> {
    v.user(&headers(pairs), &method)
        .await
        .map(|user| {
            assert_eq!(user.uid.as_str(), "u1");
            user.via
        })
        .map_err(|e| e.reason())
}

fn token() -> String {
    hs(
        Jwa::HS256,
        SECRET.as_bytes(),
        &json!({"sub": "u1", "exp": crate::clock::unix_now() + 60}),
    )
}

#[tokio::test]
async fn a_cookie_token_changes_state_only_from_an_allowed_origin() {
    let v = cookie_verifier();
    let cookie = format!("theme=dark; shop_session={}; other=1", token());
    let cookie = cookie.as_str();
    // Reading needs no origin.
    assert_eq!(
        got(&v, Method::GET, &[("cookie", cookie)]).await,
        Ok(Via::Cookie)
    );
    // Changing state does.
    for method in [Method::POST, Method::DELETE] {
        assert_eq!(
            got(&v, method.clone(), &[("cookie", cookie)]).await,
            Err("cross_site"),
            "{method}: no Origin, no Sec-Fetch-Site"
        );
        assert_eq!(
            got(&v, method.clone(), &[("cookie", cookie), ("origin", SHOP)]).await,
            Ok(Via::Cookie)
        );
        for origin in [
            "https://evil.example",
            "http://shop.example",
            "https://shop.example.evil",
            "null",
        ] {
            assert_eq!(
                got(
                    &v,
                    method.clone(),
                    &[("cookie", cookie), ("origin", origin)]
                )
                .await,
                Err("cross_site"),
                "{method} from {origin}"
            );
        }
        assert_eq!(
            got(
                &v,
                method.clone(),
                &[("cookie", cookie), ("sec-fetch-site", "same-origin")]
            )
            .await,
            Ok(Via::Cookie)
        );
        for site in ["same-site", "cross-site", "none"] {
            assert_eq!(
                got(
                    &v,
                    method.clone(),
                    &[("cookie", cookie), ("sec-fetch-site", site)]
                )
                .await,
                Err("cross_site"),
                "{method} with Sec-Fetch-Site {site}"
            );
        }
        // Origin, when sent, decides: a same-origin claim does not override a foreign one.
        assert_eq!(
            got(
                &v,
                method.clone(),
                &[
                    ("cookie", cookie),
                    ("origin", "https://evil.example"),
                    ("sec-fetch-site", "same-origin")
                ]
            )
            .await,
            Err("cross_site")
        );
    }
}

#[tokio::test]
async fn the_header_wins_and_needs_no_origin() {
    let v = cookie_verifier();
    let bearer = bearer(&token());
    let stale_cookie = format!(
        "shop_session={}",
        hs(
            Jwa::HS256,
            SECRET.as_bytes(),
            &json!({"sub": "u1", "exp": 1})
        )
    );
    assert_eq!(
        got(
            &v,
            Method::POST,
            &[("authorization", &bearer), ("cookie", &stale_cookie)]
        )
        .await,
        Ok(Via::Header)
    );
    assert_eq!(
        got(
            &v,
            Method::POST,
            &[("cookie", &stale_cookie), ("origin", SHOP)]
        )
        .await,
        Err("expired")
    );
    assert_eq!(
        got(&v, Method::GET, &[("cookie", "other=1")]).await,
        Err("missing_token")
    );
    assert_eq!(
        got(&v, Method::GET, &[("cookie", "shop_session=")]).await,
        Err("malformed_token")
    );
    let huge = format!("shop_session={}", "a".repeat(MAX_TOKEN_BYTES + 1));
    assert_eq!(
        got(&v, Method::GET, &[("cookie", &huge)]).await,
        Err("malformed_token")
    );
}

#[tokio::test]
async fn without_a_cookie_setting_a_cookie_is_not_read() {
    let v = verifier(Algorithm::HS256, SECRET);
    let cookie = format!("shop_session={}", token());
    assert_eq!(
        got(&v, Method::GET, &[("cookie", &cookie), ("origin", SHOP)]).await,
        Err("missing_token")
    );
}
