//! Command line of the `origin` binary.

/// Entry point shared by `origin` and the test build with crash points.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
