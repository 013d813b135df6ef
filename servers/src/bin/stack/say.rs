//! The launcher's messages, each line prefixed with the script the user ran.

/// `deploy/up: {text}`.
pub fn say(script: &str, text: impl std::fmt::Display) {
    println!("{script}: {text}");
}

/// `deploy/up: warning: {text}`, on stderr.
pub fn warn(script: &str, text: impl std::fmt::Display) {
    eprintln!("{script}: warning: {text}");
}

/// A banner before a long step, so a CI log reads as a list of steps.
pub fn header(script: &str, text: impl std::fmt::Display) {
    println!("\n==== {script}: {text}");
}
