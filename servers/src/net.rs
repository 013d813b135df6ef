//! Free loopback ports for the servers a test starts: the kernel picks an unused port for
//! `127.0.0.1:0`, we read it and let it go. Another process may take the port before the server
//! binds it, so the servers retry with a fresh port when their log says the address is in use.

use std::net::{Ipv4Addr, TcpListener};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
///
/// If the kernel refuses to bind an ephemeral port on loopback, which only happens when the
/// machine has no loopback interface or has run out of ports: no test can run then.
pub fn free_port() -> u16 {
    #[allow(
        clippy::expect_used,
        reason = "loopback with an ephemeral port always binds on a machine that can run the tests"
    )]
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("binding 127.0.0.1:0 succeeds on any machine with a loopback interface");
    #[allow(
        clippy::expect_used,
        reason = "a bound TCP listener always has a local address"
    )]
    let addr = listener
        .local_addr()
        .expect("a bound listener has a local address");
    addr.port()
}

#[cfg(test)]
mod tests {
    use super::free_port;

    #[test]
    fn free_port_is_bindable_and_not_zero() -> std::io::Result<()> {
        let port = free_port();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port))?;
        Ok(())
    }
}
