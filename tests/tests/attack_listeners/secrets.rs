//! Finding 9: neither service starts on the shipped or a weak secret; the edge run with the
//! placeholders the review used exits 64 before it answers anything.

use super::*;

/// Secrets as `openssl rand -base64 48` makes them.
const STRONG_KEY: &str = "3tJ1m9QbV2x0Ykq8ZJ5rS7uE4wLhA6nC0pDfGiKoRsTzUvWyXb1cNdMeOgPhQiRj";

const STRONG_CAPTCHA: &str = "Yq2Lr8Vt3Nw5Hs0Kx7Bz1Mc4Pf6Dg9Jh2Ak5Ql8Rm3Sn6To9Up1Vr4Ws7Xt0Yu3Zv";

/// The placeholders deploy/edge.toml shipped before (the review's keys).
const OLD_JWT_PLACEHOLDER: &str = "dev-only-user-jwt-secret-change-me-0123456789";

const OLD_CAPTCHA_PLACEHOLDER: &str = "dev-only-captcha-secret-change-me-0123456789";

fn repo_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs `binary args`, which must exit by itself within 30 s: (exit code, stderr).
async fn run_to_exit(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("a refused config exits at once, it does not start serving")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// deploy/edge.toml with its secrets set to `key` / `captcha` and its ports and Redis replaced.
fn edge_config(key: &str, captcha: &str, redis_url: &str) -> (tempfile::TempDir, String, u16) {
    let shipped = std::fs::read_to_string(repo_file("deploy/edge.toml")).unwrap();
    let port = net::free_port();
    let text = shipped
        .replace("key = \"\"", &format!("key = \"{key}\""))
        .replace("secret = \"\"", &format!("secret = \"{captcha}\""))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9081", &format!("127.0.0.1:{}", net::free_port()))
        .replace("redis://127.0.0.1:6380/", redis_url);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_string_lossy().into_owned(), port)
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_9_the_edge_does_not_start_on_the_shipped_or_a_weak_secret() {
    // The shipped file as it is: both secrets empty, dev mode off.
    let (code, stderr) = run_to_exit(EDGE, &["--config", &repo_file("deploy/edge.toml")]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("identity.key: is not set"), "{stderr}");
    assert!(stderr.contains("captcha.secret: is not set"), "{stderr}");

    // The review's attack: the placeholders the file used to print, put back by an operator.
    let redis = RedisServer::start().await.unwrap();
    let (_dir, path, _) = edge_config(OLD_JWT_PLACEHOLDER, OLD_CAPTCHA_PLACEHOLDER, &redis.url());
    let (code, stderr) = run_to_exit(EDGE, &["--config", &path]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("identity.key: is a placeholder"),
        "{stderr}"
    );
    assert!(
        stderr.contains("captcha.secret: is a placeholder"),
        "{stderr}"
    );

    // One weak secret is named alone.
    let (_dir, path, _) = edge_config(STRONG_KEY, "short-but-not-random", &redis.url());
    let (code, stderr) = run_to_exit(EDGE, &["--config", &path]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("captcha.secret:"), "{stderr}");
    assert!(!stderr.contains("identity.key:"), "{stderr}");

    // Strong secrets: the same file starts and answers.
    let (_dir, path, port) = edge_config(STRONG_KEY, STRONG_CAPTCHA, &redis.url());
    let mut child = Command::new(EDGE)
        .args(["--config", &path])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::new();
    flash_tests::wait::until("the edge answers /healthz", Duration::from_secs(20), || {
        let http = http.clone();
        let health = health.clone();
        async move { Ok(http.get(&health).send().await?.status() == 200) }
    })
    .await
    .unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the edge keeps running"
    );
    // Dev mode is off in the shipped file: its stand-ins for the identity provider and the
    // payment service do not exist (a token for any uid, a payment signed by the edge).
    for (path, body) in [
        ("/api/dev/token", r#"{"uid":"mallory"}"#),
        ("/api/dev/pay", r#"{"order_id":1}"#),
    ] {
        let answer = http
            .post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path} with dev mode off");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_9_the_origin_does_not_start_on_the_shipped_or_a_weak_webhook_secret() {
    let shipped = repo_file("deploy/origin.toml");
    let (code, stderr) = run_to_exit(ORIGIN, &["--config", &shipped, "serve"]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("payments.webhook_secret: is not set"),
        "{stderr}"
    );

    let text = std::fs::read_to_string(&shipped).unwrap().replace(
        "webhook_secret = \"\"",
        "webhook_secret = \"dev-only-payment-webhook-secret-change-me-0123456789\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("origin.toml");
    std::fs::write(&path, text).unwrap();
    let (code, stderr) = run_to_exit(ORIGIN, &["--config", &path.to_string_lossy(), "serve"]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("payments.webhook_secret: is a placeholder"),
        "{stderr}"
    );
}
