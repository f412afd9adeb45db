//! The address a connection is known by. A listener on `[::]` takes IPv4 clients too (Linux's
//! dual stack) and reports their addresses IPv4-mapped (`::ffff:192.0.2.7`). Everything that
//! decides by address (bans, per-address limits, loopback-only plaintext logins, the IPv4
//! address a PASV reply must announce) must see one client as one address, whichever listener
//! it came through: so the peer's and the FTP control connection's own address are made
//! canonical where connections are accepted.

use std::net::SocketAddr;

/// `address` with an IPv4-mapped IPv6 address given as the IPv4 address it maps.
pub fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn mapped_addresses_become_ipv4_and_others_stay() {
        let mapped = "[::ffff:192.0.2.7]:2121".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.7:2121".parse().unwrap());
        for kept in ["192.0.2.7:21", "[2001:db8::7]:21", "[::1]:21", "[::7]:21"] {
            let address = kept.parse().unwrap();
            assert_eq!(canonical(address), address, "{kept}");
        }
    }
}
