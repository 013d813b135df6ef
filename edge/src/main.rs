//! The `edge` binary: see `edge::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    edge::cli::main()
}
