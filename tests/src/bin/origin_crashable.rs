//! The origin binary built with its crash points (the `crash-points` feature), for the crash tests.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    origin::cli::main()
}
