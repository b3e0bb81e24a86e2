//! The client address behind reverse proxies. Only a peer inside
//! `server.trusted_proxies` may name the client, through the one header the
//! operator chose (`server.forwarded_header`); the client is the rightmost
//! address in that header that is not itself a trusted proxy. Entries left of
//! it are whatever the client sent and are never believed.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Deserialize;

/// Which header a trusted proxy uses to name the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, most load balancers).
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The address a request is judged by. `values` are the lines of the chosen
/// header in the order received. `None` means a trusted proxy named a client
/// that cannot be read (`unknown`, an obfuscated name, garbage): the request
/// has no address to allow.
pub fn client_ip<'a>(
    peer: IpAddr,
    trusted: &[IpNet],
    header: ForwardedHeader,
    values: impl IntoIterator<Item = &'a str>,
) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let ip = match header {
            ForwardedHeader::XForwardedFor => parse_node(entry),
            ForwardedHeader::Forwarded => forwarded_for(entry).and_then(parse_node),
        }?
        .to_canonical();
        client = ip;
        if !is_trusted(trusted, ip) {
            break;
        }
    }
    Some(client)
}

fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The `for=` value of one RFC 7239 element (`for=1.2.3.4;proto=https`),
/// quotes removed.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    node.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(peer: &str, trusted: &[&str], values: &[&str]) -> Option<IpAddr> {
        client_ip(
            peer.parse().unwrap(),
            &nets(trusted),
            ForwardedHeader::XForwardedFor,
            values.iter().copied(),
        )
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_address() {
        assert_eq!(
            xff("198.51.100.7", &["10.0.0.0/8"], &["127.0.0.1"]),
            ip("198.51.100.7")
        );
        assert_eq!(xff("198.51.100.7", &[], &["127.0.0.1"]), ip("198.51.100.7"));
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let trusted = ["10.0.0.0/8", "192.0.2.1/32"];
        assert_eq!(
            xff("10.0.0.5", &trusted, &["203.0.113.9, 192.0.2.1"]),
            ip("203.0.113.9")
        );
        // A forged entry on the left is ignored: the proxy appended the truth.
        assert_eq!(
            xff("10.0.0.5", &trusted, &["127.0.0.1, 203.0.113.9, 10.0.0.7"]),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            xff("10.0.0.5", &trusted, &["127.0.0.1", "203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_peer_without_the_header_or_with_only_proxies_is_judged_itself() {
        assert_eq!(xff("10.0.0.5", &["10.0.0.0/8"], &[]), ip("10.0.0.5"));
        assert_eq!(
            xff("10.0.0.5", &["10.0.0.0/8"], &["10.1.1.1, 10.2.2.2"]),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn an_unreadable_client_entry_gives_no_address() {
        assert_eq!(xff("10.0.0.5", &["10.0.0.0/8"], &["unknown"]), None);
        // ...but garbage left of the client does not matter.
        assert_eq!(
            xff("10.0.0.5", &["10.0.0.0/8"], &["garbage, 203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_ports_and_mapped_addresses_are_read() {
        assert_eq!(
            xff("::ffff:10.0.0.5", &["10.0.0.0/8"], &["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            xff("::1", &["::1/128"], &["::ffff:203.0.113.9"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            xff("::1", &["::1/128"], &["203.0.113.9:5555"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn rfc7239_forwarded_elements_are_read() {
        let got = client_ip(
            "10.0.0.5".parse().unwrap(),
            &nets(&["10.0.0.0/8"]),
            ForwardedHeader::Forwarded,
            [
                r#"for=127.0.0.1, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.9;by=10.0.0.5"#,
            ],
        );
        assert_eq!(got, ip("2001:db8:cafe::17"));
        let got = client_ip(
            "10.0.0.5".parse().unwrap(),
            &nets(&["10.0.0.0/8"]),
            ForwardedHeader::Forwarded,
            ["for=_hidden"],
        );
        assert_eq!(got, None);
    }
}
