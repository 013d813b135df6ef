//! The edge binary, built inside the tests package so integration tests can start it as a
//! process (`CARGO_BIN_EXE_edge-under-test`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    edge::cli::main()
}
