//! Sales: the creation request and its validation, the sale as stored, its state at a moment
//! (the wire's `SaleState`),
//! and the in-memory catalog the origin keeps of them (sales do not change once created, but
//! for `sold`, so a reservation needs no database read and works while PostgreSQL is down).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

pub use flash_wire::SaleState;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A sale as PostgreSQL holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub id: i64,
    pub name: String,
    pub total: i32,
    pub sold: i32,
    pub starts_at: OffsetDateTime,
    pub ends_at: Option<OffsetDateTime>,
    pub hold_seconds: i32,
    /// Price in the currency's minor unit.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Sale {
    /// The state at `now`, given the units Redis still has.
    pub fn state(&self, now: OffsetDateTime, remaining: i64) -> SaleState {
        if self.ends_at.is_some_and(|end| now >= end) {
            SaleState::Ended
        } else if remaining <= 0 {
            SaleState::SoldOut
        } else if now < self.starts_at {
            SaleState::Upcoming
        } else {
            SaleState::Live
        }
    }
}

/// The body of `POST /v1/sales`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSale {
    pub name: String,
    pub stock: i64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    pub hold_seconds: Option<i64>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
}

/// A validated sale to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSale {
    pub name: String,
    pub stock: i32,
    pub starts_at: OffsetDateTime,
    pub ends_at: Option<OffsetDateTime>,
    pub hold_seconds: i32,
    pub price_cents: i64,
    pub currency: String,
}

impl CreateSale {
    /// Checks every field; the first bad one is named in the error.
    pub fn validate(
        self,
        now: OffsetDateTime,
        max_stock: u32,
        default_hold_seconds: u32,
    ) -> Result<NewSale> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::bad_request(
                "invalid_name",
                "name must be 1 to 200 characters",
            ));
        }
        if !(0..=i64::from(max_stock)).contains(&self.stock) {
            return Err(Error::bad_request(
                "invalid_stock",
                format!("stock must be between 0 and {max_stock}"),
            ));
        }
        let starts_at = self.starts_at.unwrap_or(now);
        if let Some(end) = self.ends_at {
            if end <= starts_at {
                return Err(Error::bad_request(
                    "invalid_window",
                    "ends_at must be after starts_at",
                ));
            }
        }
        let hold = self.hold_seconds.unwrap_or(i64::from(default_hold_seconds));
        if !(1..=7 * 86_400).contains(&hold) {
            return Err(Error::bad_request(
                "invalid_hold",
                "hold_seconds must be between 1 and 604800",
            ));
        }
        let price_cents = self.price_cents.unwrap_or(0);
        if !(0..=100_000_000_000).contains(&price_cents) {
            return Err(Error::bad_request(
                "invalid_price",
                "price_cents must be between 0 and 100000000000",
            ));
        }
        let currency = self.currency.unwrap_or_else(|| "EUR".into());
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::bad_request(
                "invalid_currency",
                "currency must be an ISO 4217 code such as EUR",
            ));
        }
        Ok(NewSale {
            name,
            price_cents,
            currency,
            stock: i32::try_from(self.stock).unwrap_or(i32::MAX),
            starts_at,
            ends_at: self.ends_at,
            hold_seconds: i32::try_from(hold).unwrap_or(i32::MAX),
        })
    }
}

/// The sales this origin knows, by id.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    sales: Arc<RwLock<HashMap<i64, Arc<Sale>>>>,
}

impl Catalog {
    pub fn get(&self, id: i64) -> Option<Arc<Sale>> {
        self.sales.read().ok()?.get(&id).cloned()
    }

    pub fn insert(&self, sale: Sale) -> Arc<Sale> {
        let sale = Arc::new(sale);
        if let Ok(mut sales) = self.sales.write() {
            sales.insert(sale.id, sale.clone());
        }
        sale
    }

    pub fn ids(&self) -> Vec<i64> {
        self.sales
            .read()
            .map(|s| s.keys().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    fn create(stock: i64, hold: Option<i64>, ends: Option<OffsetDateTime>) -> CreateSale {
        CreateSale {
            name: "Sneakers".into(),
            stock,
            starts_at: None,
            ends_at: ends,
            hold_seconds: hold,
            price_cents: None,
            currency: None,
        }
    }

    #[test]
    fn creation_is_validated_field_by_field() {
        let check = |c: CreateSale, expected: std::result::Result<(), &str>| {
            let got = c.validate(NOW, 1000, 600).map(|_| ()).map_err(|e| match e {
                Error::BadRequest { code, .. } => code,
                _ => "other",
            });
            assert_eq!(got, expected);
        };
        check(create(10, None, None), Ok(()));
        check(create(-1, None, None), Err("invalid_stock"));
        check(create(1001, None, None), Err("invalid_stock"));
        check(create(10, Some(0), None), Err("invalid_hold"));
        check(create(10, None, Some(NOW)), Err("invalid_window"));
        let mut blank = create(1, None, None);
        blank.name = "  ".into();
        check(blank, Err("invalid_name"));
    }

    #[test]
    fn state_follows_time_and_stock() {
        let sale = Sale {
            id: 1,
            name: "x".into(),
            total: 5,
            sold: 0,
            starts_at: NOW,
            ends_at: Some(NOW + time::Duration::hours(1)),
            hold_seconds: 600,
            price_cents: 0,
            currency: "EUR".into(),
        };
        let check = |at: OffsetDateTime, left: i64, expected: SaleState| {
            assert_eq!(sale.state(at, left), expected);
        };
        check(NOW - time::Duration::seconds(1), 5, SaleState::Upcoming);
        check(NOW, 5, SaleState::Live);
        check(NOW, 0, SaleState::SoldOut);
        check(NOW + time::Duration::hours(2), 5, SaleState::Ended);
    }
}
