//! placeholder
pub mod global;
pub mod ip;
pub mod uid;
