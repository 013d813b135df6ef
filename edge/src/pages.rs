//! The sale page, rendered with askama from the sale's facts. It is the same for every visitor
//! (no user data in it), so nginx and the CDN cache it; the browser script (`static/sale.js`)
//! counts down on the server's time, polls the status and runs the captcha and the purchase.

use askama::Template;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::sales::{format_price, SaleInfo, State};

#[derive(Template)]
#[template(path = "sale.html")]
struct SalePage<'a> {
    id: i64,
    name: &'a str,
    price: String,
    stock: i64,
    starts_at: String,
    starts_at_human: String,
    ends_at: String,
    server_time: String,
    state: &'static str,
    state_text: &'static str,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The page's HTML at `now`.
pub fn sale_page(
    info: &SaleInfo,
    now: OffsetDateTime,
    sold_out: bool,
) -> Result<String, askama::Error> {
    let status = info.status(now, sold_out);
    let (state, state_text) = match status.state {
        State::Upcoming => ("upcoming", "The sale has not started yet."),
        State::Live => ("live", "The sale is live."),
        State::SoldOut => ("sold_out", "Sold out."),
        State::Ended => ("ended", "The sale has ended."),
    };
    let human = info
        .starts_at
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default();
    SalePage {
        id: info.id,
        name: &info.name,
        price: format_price(info.price_cents, &info.currency),
        stock: info.stock,
        starts_at: rfc3339(info.starts_at),
        starts_at_human: human,
        ends_at: info.ends_at.map(rfc3339).unwrap_or_default(),
        server_time: rfc3339(now),
        state,
        state_text,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn page_shows_the_sale_and_escapes_its_name() {
        let info = SaleInfo {
            id: 7,
            name: "<script>alert(1)</script> Sneakers".into(),
            stock: 300,
            remaining: 300,
            starts_at: datetime!(2026-11-22 18:00 UTC),
            ends_at: None,
            hold_seconds: 600,
            price_cents: 12900,
            currency: "EUR".into(),
        };
        let html = sale_page(&info, datetime!(2026-11-22 17:00 UTC), false).unwrap();
        assert!(html.contains("129.00 EUR"), "{html}");
        assert!(html.contains("data-sale=\"7\""));
        assert!(html.contains("2026-11-22 18:00:00 UTC"));
        assert!(html.contains("data-state=\"upcoming\""));
        assert!(
            !html.contains("<script>alert(1)"),
            "the name must be escaped"
        );
    }
}
