//! The `edge` binary.
#![forbid(unsafe_code)]

fn main() {}
