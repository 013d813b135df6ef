//! The `origin` binary: see `origin::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    origin::cli::main()
}
