//! Data connection addresses: the passive port range, PASV and EPSV replies (RFC 959,
//! RFC 2428), and PORT/EPRT arguments for active mode. Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An inclusive range of ports for passive data connections (config `ftp.passive_ports`,
/// written `"50000-50999"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<PortRange, String> {
        let invalid = || format!("passive port range {text:?} must look like \"50000-50999\" (ports 1024 to 65535)");
        let (first, last) = text.trim().split_once('-').ok_or_else(invalid)?;
        let first: u16 = first.trim().parse().map_err(|_| invalid())?;
        let last: u16 = last.trim().parse().map_err(|_| invalid())?;
        if first < 1024 || first > last {
            return Err(invalid());
        }
        Ok(PortRange { first, last })
    }
}

impl PortRange {
    /// How many ports the range holds (at least one).
    pub fn count(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    /// The ports to try, starting at `start` (any number; taken modulo the range) and wrapping,
    /// so that concurrent sessions spread over the range instead of all trying its first port.
    pub fn ports_from(&self, start: usize) -> impl Iterator<Item = u16> + use<> {
        let (first, len) = (self.first, self.count());
        (0..len).map(move |i| first + ((start + i) % len) as u16)
    }
}

/// The 227 reply text for PASV: `Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
pub fn pasv_reply(ip: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    format!("Entering Passive Mode ({a},{b},{c},{d},{},{})", port >> 8, port & 0xFF)
}

/// The 229 reply text for EPSV: `Entering Extended Passive Mode (|||port|)`.
pub fn epsv_reply(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Parses PORT's `h1,h2,h3,h4,p1,p2`.
pub fn parse_port(argument: &str) -> Option<SocketAddr> {
    let numbers: Vec<u8> = argument.trim().split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = numbers[..] else { return None };
    let port = u16::from(p1) << 8 | u16::from(p2);
    (port != 0).then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port))
}

/// Parses EPRT's `|1|132.235.1.2|6275|` (any delimiter, protocol 1 = IPv4, 2 = IPv6).
pub fn parse_eprt(argument: &str) -> Option<SocketAddr> {
    let argument = argument.trim();
    let delimiter = argument.chars().next()?;
    let fields: Vec<&str> = argument.split(delimiter).collect();
    let ["", protocol, address, port, ""] = fields[..] else { return None };
    let ip = match protocol {
        "1" => IpAddr::V4(address.parse::<Ipv4Addr>().ok()?),
        "2" => IpAddr::V6(address.parse::<Ipv6Addr>().ok()?),
        _ => return None,
    };
    let port: u16 = port.parse().ok()?;
    (port != 0).then_some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_wrap() {
        let range: PortRange = "50000-50002".parse().unwrap();
        assert_eq!(range.count(), 3);
        assert_eq!(range.ports_from(4).collect::<Vec<_>>(), vec![50001, 50002, 50000]);
        assert!("80-90".parse::<PortRange>().is_err());
        assert!("6000-5000".parse::<PortRange>().is_err());
        assert!("5000".parse::<PortRange>().is_err());
    }

    #[test]
    fn passive_replies() {
        assert_eq!(pasv_reply(Ipv4Addr::LOCALHOST, 50_001), "Entering Passive Mode (127,0,0,1,195,81)");
        assert_eq!(epsv_reply(50_001), "Entering Extended Passive Mode (|||50001|)");
    }

    #[test]
    fn active_addresses() {
        assert_eq!(parse_port("127,0,0,1,195,81"), Some("127.0.0.1:50001".parse().unwrap()));
        assert_eq!(parse_port("127,0,0,1,300,1"), None);
        assert_eq!(parse_port("127,0,0,1,0,0"), None);
        assert_eq!(parse_eprt("|1|127.0.0.1|6275|"), Some("127.0.0.1:6275".parse().unwrap()));
        assert_eq!(parse_eprt("|2|::1|6275|"), Some("[::1]:6275".parse().unwrap()));
        assert_eq!(parse_eprt("|3|x|1|"), None);
    }
}
