//! The one mapping between the enums of `flash-wire` and the texts they are stored as: the text
//! columns of PostgreSQL (`orders.status`, `orders.cancel_reason`) and the transaction record
//! `reserve.lua` keeps in Redis (`state`, `outcome`). A text is read through the enum's serde
//! spelling, the one on the wire, so the stores, the API and the code cannot spell a state
//! differently; a text the enum does not know is an error, never a silent default.

use std::error::Error;

use serde::{
    de::{value::StrDeserializer, DeserializeOwned, IntoDeserializer},
    Serialize,
};
use tokio_postgres::types::{FromSql, Type};

/// The enum `T` spelt `text`; `None` when `T` has no such variant.
pub fn parse<T: DeserializeOwned>(text: &str) -> Option<T> {
    read(text).ok()
}

/// The text `value` is stored as: its serde spelling (`None` for a value that is not a unit
/// variant, which the enums stored as text never are).
pub fn spelling<T: Serialize>(value: T) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Some(text),
        _ => None,
    }
}

fn read<T: DeserializeOwned>(text: &str) -> Result<T, serde::de::value::Error> {
    let text: StrDeserializer<'_, serde::de::value::Error> = text.into_deserializer();
    T::deserialize(text)
}

/// A text column read as `T`: `row.get::<_, Text<OrderStatus>>("status").0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<T>(pub T);

impl<'a, T: DeserializeOwned> FromSql<'a> for Text<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        Ok(Self(read(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flash_wire::{CancelReason, OrderStatus, TxOutcome, TxState};

    fn column<T: DeserializeOwned>(text: &str) -> Option<T> {
        Text::<T>::from_sql(&Type::TEXT, text.as_bytes())
            .ok()
            .map(|t| t.0)
    }

    #[test]
    fn texts_read_as_their_enums_and_nothing_else() {
        assert_eq!(column("pending"), Some(OrderStatus::Pending));
        assert_eq!(column("paid"), Some(OrderStatus::Paid));
        assert_eq!(column("cancelled"), Some(OrderStatus::Cancelled));
        assert_eq!(column("rejected"), Some(OrderStatus::Rejected));
        assert_eq!(column("expired"), Some(CancelReason::Expired));
        assert_eq!(column("user"), Some(CancelReason::User));
        assert_eq!(column::<OrderStatus>("Pending"), None);
        assert_eq!(column::<OrderStatus>("pendng"), None);
        assert_eq!(parse("submitted"), Some(TxState::Submitted));
        assert_eq!(parse("succeeded"), Some(TxState::Succeeded));
        assert_eq!(parse("rejected"), Some(TxOutcome::Rejected));
        assert_eq!(parse::<TxState>("done"), None);
        assert_eq!(spelling(CancelReason::User).as_deref(), Some("user"));
        assert_eq!(
            spelling(OrderStatus::Cancelled).as_deref(),
            Some("cancelled")
        );
    }
}
