//! placeholder
pub mod image;
pub mod level;
pub mod pow;
