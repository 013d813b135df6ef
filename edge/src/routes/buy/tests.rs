//! Unit tests of the buy route's pure parts.

use super::*;

#[test]
fn only_a_410_without_user_fields_is_the_same_for_everyone() {
    let check = |status: StatusCode, body: &str, expected: bool| {
        let answer = Answer {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        };
        let same = Reply::read(&answer).same_for_everyone();
        assert_eq!(same, expected, "{status} {body}");
    };
    let gone = StatusCode::GONE;
    check(
        gone,
        r#"{"error":"sold_out","message":"no unit left"}"#,
        true,
    );
    check(
        gone,
        r#"{"error":"ended","message":"the sale has ended"}"#,
        true,
    );
    check(
        gone,
        r#"{"error":"sold_out","message":"no unit left","gid":"7/alice","order_id":12}"#,
        false,
    );
    check(gone, r#"{"error":"sold_out"}"#, false);
    check(
        StatusCode::CONFLICT,
        r#"{"error":"duplicate","message":"x"}"#,
        false,
    );
    check(gone, r#"["sold_out"]"#, false);
    check(gone, "not json", false);
    check(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error":"redis_unavailable","message":"m"}"#,
        false,
    );
}

#[test]
fn the_last_unit_and_the_origin_s_sold_out_flag_the_sale() {
    let check = |status: StatusCode, body: &str, expected: bool| {
        let answer = Answer {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        };
        assert_eq!(Reply::read(&answer).sold_out(), expected, "{status} {body}");
    };
    let reserved = |left: i64| {
        format!(
            r#"{{"status":"reserved","gid":"7/a","order_id":3,"confirmed":true,"remaining_hint":{left}}}"#
        )
    };
    check(StatusCode::OK, &reserved(0), true);
    check(StatusCode::OK, &reserved(4), false);
    check(
        StatusCode::GONE,
        r#"{"error":"sold_out","message":"no unit left"}"#,
        true,
    );
    check(
        StatusCode::GONE,
        r#"{"error":"ended","message":"the sale has ended"}"#,
        false,
    );
}
