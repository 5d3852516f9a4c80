//! The address a per-address limit counts a client under.
//!
//! An IPv4 client is counted by its address. An IPv6 client is counted by its /64 network:
//! a single host is routinely handed a whole /64 (SLAAC, privacy addresses, a prefix
//! delegated to a home router), so counting whole IPv6 addresses would let one client open
//! as many connections as it cares to pick addresses, around every per-address limit. An
//! IPv4 address written as IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
//! IPv4 peer) is counted as that IPv4 address, so one client is never counted under two
//! keys depending on the socket that accepted it; so is an address of the well-known
//! NAT64 prefix (`64:ff9b::/96`, RFC 6052), behind which every IPv4 client would
//! otherwise share one /64.

use std::net::{IpAddr, Ipv4Addr};

/// A client's key for the per-address limits (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClientAddress {
    /// An IPv4 client, by its address.
    V4(Ipv4Addr),
    /// An IPv6 client, by the first 64 bits of its address.
    V6Network(u64),
}

impl ClientAddress {
    /// The key `ip` is counted under.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64_client(v6)) {
                Some(v4) => Self::V4(v4),
                None => Self::V6Network((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// The IPv4 client behind an address of the well-known NAT64 prefix `64:ff9b::/96`.
fn nat64_client(v6: std::net::Ipv6Addr) -> Option<Ipv4Addr> {
    const WELL_KNOWN_PREFIX: u128 = 0x0064_ff9b << 96;
    let bits = v6.to_bits();
    (bits >> 32 == WELL_KNOWN_PREFIX >> 32).then(|| Ipv4Addr::from_bits(bits as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ClientAddress {
        ClientAddress::of(text.parse().expect("an IP address"))
    }

    #[test]
    fn ipv4_clients_are_counted_by_address() {
        assert_eq!(key("192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn ipv6_clients_in_one_64_network_share_a_key() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:a:b:c:d"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::1"), key("::2"));
    }

    #[test]
    fn an_ipv4_address_written_as_ipv6_is_the_ipv4_client() {
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("::ffff:192.0.2.7"), key("::ffff:192.0.2.8"));
        // Not the mapped form: an ordinary IPv6 address in the first /64.
        assert_ne!(key("::192.0.2.7"), key("192.0.2.7"));
    }

    #[test]
    fn clients_behind_the_well_known_nat64_prefix_are_their_ipv4_addresses() {
        assert_eq!(key("64:ff9b::192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("64:ff9b::192.0.2.7"), key("64:ff9b::192.0.2.8"));
        // Outside the /96: an ordinary IPv6 network.
        assert_ne!(key("64:ff9b:1::192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("64:ff9b:0:0:1::1"), key("64:ff9b:0:0:2::1"));
    }
}
