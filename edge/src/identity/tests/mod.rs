//! Unit tests of user JWT verification, and the helpers and keys they share: each known attack
//! (`alg: none`, key confusion, wrong key, tampering, missing claims) refused by reason
//! (`attacks`); the happy path under each algorithm, the issuer, the key config and dev tokens
//! (`verifying`); JWKS documents read or refused (`jwks`); the header or the cookie, and the CSRF rule
//! (`carrier`). The provider's keys fetched over HTTP: tests/tests/identity_provider.

mod attacks;
mod carrier;
mod jwks;
mod verifying;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm as Jwa, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::config::KeySource;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "test-user-jwt-secret-0123456789abcdef";

fn config(algorithm: Algorithm, key: &str) -> IdentityConfig {
    with_key(algorithm, KeySource::Inline(key.to_string()))
}

fn with_key(algorithm: Algorithm, source: KeySource) -> IdentityConfig {
    IdentityConfig {
        keys: Some(Keys::Static { algorithm, source }),
        ..IdentityConfig::default()
    }
}

fn build(cfg: &IdentityConfig) -> Result<Verifier, IdentityConfigError> {
    Verifier::from_config(cfg, None, &JwksMetrics::default())
}

fn verifier(algorithm: Algorithm, key: &str) -> Verifier {
    build(&config(algorithm, key)).unwrap()
}

fn sign(alg: Jwa, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn hs(alg: Jwa, secret: &[u8], claims: &Value) -> String {
    sign(alg, &EncodingKey::from_secret(secret), claims)
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// A token put together by hand: any header, any claims, any signature.
fn forged(header: &str, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(&claims.to_string()))
}

fn good() -> Value {
    json!({"sub": "u1", "exp": NOW + 60})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Verifies `header` at `NOW` and compares the uid or the refusal reason.
fn check(verifier: &Verifier, header: Option<&str>, expected: Result<&str, &str>) {
    let got = verifier.verify_at(header, NOW);
    let got = got.as_ref().map(Uid::as_str).map_err(IdentityError::reason);
    assert_eq!(got, expected, "header {header:?}");
}

fn check_token(verifier: &Verifier, token: &str, expected: Result<&str, &str>) {
    check(verifier, Some(&bearer(token)), expected);
}

fn rsa_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()
}

// Throwaway keys made for these tests with openssl (genrsa -traditional 2048, genpkey P-256
// and ED25519); they sign nothing else.

const RSA_PRIVATE: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAvsTv5XN9Httmxg/Igp5b7OPrjo5f0+uiReBCVyzx87IB3HIW
leOydBWasu26hIY07xreRKRENjlyD+uHUJbcUtj3Vt53TjdCvcM4O5GTF2JA0a5Q
V0KCd3+m1004P5G4yih7rI5DGF7wuoWroanwhZ4OOZTbQ0jccpV/DeliVT7YuLVs
qz1SkIAiUa/8kN4/0hQmfHkCLmQvYwmNKVSzhJMZmUCq4CSaAgCw7vL/MXW/FU3e
HjPIe8MsoH1G9mko0d7qCr9aecvfcCQ9o1OMvUGa9vnvb6ec5gcN7dw6PzMrC0t2
FgqS8StNKF/tnMXL2f2npY6ZeM8QzfUfc/bwPQIDAQABAoIBAAGp3vutv6QSvrkw
bwuwjNWqgSXbmPtUnTQlyf5PnoaFAV4mQospEqfPfmtcBlncf76sCc8obY3Zf2Sj
Jaluv1obmUCRLRIqCjN0bdubH+C+0xjg/8NbCZ84JkDPZBOt1iIxKy7siKpAPbIq
sz30KOxJXg9jfGwASSfYpOR+qgRbRZWC2m4O86mJJ24KZynXAxnBVsExGtOAUjKE
P2Fp46z934Gk8/1skPHcGlE9lbKhu6iNcxvK5uGRRAJieZPb6lfT8rwhYHiXnyRH
epyimhmEeJqa9pbAcJclsoq8e6lkZYbZISns8Qi+8uIKvXzGDmiY3vaGwVguPh6q
EC4UQ3ECgYEA6NGejMrwAim1HEQ9LyZCxLM+r4SUnwA24ACTfMjC7zTAm3v1P6fO
Pwb9rP/EGOerlcUxVog855If3OlHGCMWKiQUareNoyIgik1Fr352QQ8fc7JitGN/
K8karVKiZeQ7FR3etWDPClv7ORtBRfUG5+0inw3VhvxK/mTgv5LRRHUCgYEA0cOB
gvel6HvtwTS36xiOEbvdhfXweU5c7VuK8IBApiD9fwCk8o3eltBvj/yqVfQKFl8R
tPGQcg9sZ2OtWlm15mGCkv/Tmj1sSqdoH3NiAX3ynfBY4SNwLwCS7YOymJxXwg1h
/yvj+oAkX8IIsUekYUfjEdJOS6DCpkYO2FAJ46kCgYBsUKms4vVKbFEAN5cnimth
y+qMCeiDGLxu9pWnZleapjY9oCv3U4CWvg/jHpMC6zVe1oEfuv5q1gbQ5g7XYet7
65E8HO1eShBNh6m1/eXSWtDNKN7XAbs2ibdJj7pSIR6DsoPcao+oSCbW6KEzhM2T
tTV4Ph1rUZEqTZBqUEnfyQKBgQCES06CQBhF8Os5QDuCrWDktFx5IWyBxTd8h5Cw
L+MWI5ZdJBXj2C/7ZAgIgq0XOqumAl2Thgq4tRuEdWweoJfFbdhBR9G35GdJCh30
P/wevsVmcPBNReF58123KKlZ8Li0bWZR3eeR1IGcVy7OSEXXCNSgJ8gzkHdTELpK
GOizyQKBgQCsmZClF6BinnPUIx/diUXwy2jfc41ueZbADTpYL1c12Q8LF6dcO90E
WYjVcYDNXl/W6JMAbfxnGX8lAHNb7gssZrKrQ8SC53LhqiLDxWcy4xAQCx652FKD
KN0ZyXkSrY0Gty9YapnssxdohTrHidCAmC15cX2W/COxpOjhEXZ13w==
-----END RSA PRIVATE KEY-----
";

const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvsTv5XN9Httmxg/Igp5b
7OPrjo5f0+uiReBCVyzx87IB3HIWleOydBWasu26hIY07xreRKRENjlyD+uHUJbc
Utj3Vt53TjdCvcM4O5GTF2JA0a5QV0KCd3+m1004P5G4yih7rI5DGF7wuoWroanw
hZ4OOZTbQ0jccpV/DeliVT7YuLVsqz1SkIAiUa/8kN4/0hQmfHkCLmQvYwmNKVSz
hJMZmUCq4CSaAgCw7vL/MXW/FU3eHjPIe8MsoH1G9mko0d7qCr9aecvfcCQ9o1OM
vUGa9vnvb6ec5gcN7dw6PzMrC0t2FgqS8StNKF/tnMXL2f2npY6ZeM8QzfUfc/bw
PQIDAQAB
-----END PUBLIC KEY-----
";

const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghI7Z0w260kd0RwTo
mjMNL/mxeFc1mQYM/5+djSo/lgyhRANCAASO6ZNpaBQJ8kgGZwVrvaZq5Bx5itfB
gn/jxcuerPpsTvwLv5QBs7CXHTYC7cT9/c5CGxDm/zWRteLajpuXxND/
-----END PRIVATE KEY-----
";

const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjumTaWgUCfJIBmcFa72mauQceYrX
wYJ/48XLnqz6bE78C7+UAbOwlx02Au3E/f3OQhsQ5v81kbXi2o6bl8TQ/w==
-----END PUBLIC KEY-----
";

const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHuxExkuhVelnL0Aa3j9DP2Wkj8E0p7GeKCbgvGsGUj7
-----END PRIVATE KEY-----
";

const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAeMJfRm4m6AWd+XqV/oD0KOfNzy7rayhb0ZTYo3a17ZM=
-----END PUBLIC KEY-----
";

/// The public JWK of a test key under `alg` with `kid` (as a provider publishes it).
fn public_jwk(alg: Jwa, kid: &str) -> Value {
    let mut jwk = match alg {
        Jwa::RS256 | Jwa::PS256 => serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa_private(), alg).unwrap(),
        )
        .unwrap(),
        Jwa::ES256 => serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(
                &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
                alg,
            )
            .unwrap(),
        )
        .unwrap(),
        Jwa::EdDSA => {
            // The SubjectPublicKeyInfo of an Ed25519 key ends with its 32 bytes.
            let body: String = ED_PUBLIC
                .lines()
                .filter(|l| !l.starts_with("---"))
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap();
            json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                "x": URL_SAFE_NO_PAD.encode(&der[der.len() - 32..])})
        }
        other => panic!("no test key for {other:?}"),
    };
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk
}
