//! Another user's order and an unknown one are both 404 through the edge.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn another_users_order_and_an_unknown_one_are_both_404_through_the_edge() {
    let stack = stack().await;
    let edge = edge(&stack).await;
    let sale = sale(&stack, 2, 600).await;
    let order = reserve(&stack, sale, "alice").await;
    let url = edge.url();
    let mallory = jwt("mallory");
    let alice = jwt("alice");
    let cases = [
        (
            "GET",
            format!("{url}/api/orders/{order}"),
            None::<Value>,
            &mallory,
            404,
            "unknown_order",
        ),
        (
            "DELETE",
            format!("{url}/api/orders/{order}"),
            None,
            &mallory,
            404,
            "unknown_order",
        ),
        (
            "POST",
            format!("{url}/api/orders/{order}/extend"),
            None,
            &mallory,
            404,
            "unknown_order",
        ),
        (
            "GET",
            format!("{url}/api/orders/999999"),
            None,
            &alice,
            404,
            "unknown_order",
        ),
        (
            "GET",
            format!("{url}/api/orders/abc"),
            None,
            &alice,
            400,
            "invalid_order_id",
        ),
    ];
    for (method, target, body, token, status, code) in cases {
        let mut req = stack
            .http
            .request(method.parse().unwrap(), &target)
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{method} {target}: {body}"
        );
    }
    // The owner sees the hold and its time left, extends it once, pays.
    let mine = json_of(
        stack
            .http
            .get(format!("{url}/api/orders/{order}"))
            .bearer_auth(&alice),
    )
    .await;
    assert_eq!(mine["status"], "pending");
    assert!(
        mine["hold_remaining_seconds"].as_i64().unwrap() > 500,
        "{mine}"
    );
    let extend = |n: u16| {
        let http = stack.http.clone();
        let target = format!("{url}/api/orders/{order}/extend");
        let alice = alice.clone();
        async move {
            let resp = http.post(target).bearer_auth(&alice).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), n);
        }
    };
    extend(200).await;
    extend(409).await;
    // Paid by the payment service's signed webhook (dev mode plays it for the owner).
    let pay = format!("{url}/api/dev/pay");
    let paid = post_as(&stack, pay, &alice, json!({"order_id": order})).await;
    assert_eq!(paid.status(), 200);
    stack.books(sale).await.unwrap().check().unwrap();
}
