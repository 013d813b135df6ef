//! JWKS documents: each key under its own algorithm, and the documents refused whole.

use super::*;
use crate::identity::{
    jwks::{JwksError, KeySet},
    keys::ClaimRules,
};

fn rules() -> ClaimRules {
    ClaimRules {
        issuer: None,
        audience: None,
        leeway: 5,
    }
}

fn parse(keys: &[Value]) -> Result<KeySet, JwksError> {
    KeySet::parse(
        json!({ "keys": keys }).to_string().as_bytes(),
        64 * 1024,
        &rules(),
    )
}

#[test]
fn each_key_verifies_under_its_own_algorithm_only() {
    let set = parse(&[
        public_jwk(Jwa::RS256, "r"),
        public_jwk(Jwa::ES256, "e"),
        public_jwk(Jwa::EdDSA, "d"),
    ])
    .unwrap();
    assert_eq!(set.len(), 3);
    for (kid, alg) in [("r", Jwa::RS256), ("e", Jwa::ES256), ("d", Jwa::EdDSA)] {
        assert_eq!(set.get(kid).unwrap().algorithm, alg, "{kid}");
    }
    // Without `alg`, the key type decides.
    let mut bare = public_jwk(Jwa::RS256, "bare");
    bare.as_object_mut().unwrap().remove("alg");
    assert_eq!(
        parse(&[bare]).unwrap().get("bare").unwrap().algorithm,
        Jwa::RS256
    );
}

#[test]
fn a_symmetric_or_unsigned_key_refuses_the_whole_document() {
    let good = public_jwk(Jwa::RS256, "r");
    let oct = json!({"kty": "oct", "kid": "s", "k": URL_SAFE_NO_PAD.encode(SECRET)});
    let mut hs = public_jwk(Jwa::RS256, "h");
    hs["alg"] = json!("HS256");
    let mut none = public_jwk(Jwa::ES256, "n");
    none["alg"] = json!("none");
    for bad in [oct, hs, none] {
        let got = parse(&[good.clone(), bad.clone()]).err();
        assert!(
            matches!(got, Some(JwksError::Symmetric { index: 1, .. })),
            "{bad}: {got:?}"
        );
    }
}

#[test]
fn unusable_keys_are_left_out_and_a_document_of_none_is_refused() {
    let mut enc = public_jwk(Jwa::RS256, "enc");
    enc["use"] = json!("enc");
    let mut no_kid = public_jwk(Jwa::RS256, "x");
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut misfit = public_jwk(Jwa::RS256, "misfit");
    misfit["alg"] = json!("ES256");
    let odd = json!({"kty": "XYZ", "kid": "odd"});
    let set = parse(&[
        enc.clone(),
        no_kid.clone(),
        misfit.clone(),
        odd.clone(),
        public_jwk(Jwa::ES256, "ok"),
        public_jwk(Jwa::RS256, "ok"),
    ])
    .unwrap();
    assert_eq!(set.len(), 1, "only the first key named ok");
    assert_eq!(set.get("ok").unwrap().algorithm, Jwa::ES256);
    assert_eq!(
        parse(&[enc, no_kid, misfit, odd]).err(),
        Some(JwksError::NoKeys(4))
    );
}

#[test]
fn malformed_and_huge_documents_are_refused() {
    for text in ["", "not json", "[]", "{\"keys\": 5}", "{\"keys\": [1]}"] {
        let got = KeySet::parse(text.as_bytes(), 1024, &rules()).err();
        assert!(
            matches!(got, Some(JwksError::Malformed(_) | JwksError::NoKeys(_))),
            "{text:?}: {got:?}"
        );
    }
    let big = json!({ "keys": [public_jwk(Jwa::RS256, "r")] }).to_string();
    assert_eq!(
        KeySet::parse(big.as_bytes(), big.len() - 1, &rules()).err(),
        Some(JwksError::TooLarge {
            limit: big.len() - 1
        })
    );
    let many: Vec<Value> = (0..=crate::identity::jwks::MAX_KEYS)
        .map(|i| public_jwk(Jwa::ES256, &i.to_string()))
        .collect();
    assert!(matches!(parse(&many), Err(JwksError::Malformed(_))));
}
