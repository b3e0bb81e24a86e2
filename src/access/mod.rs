//! Who may write: the peer address against the allowlists, and the per-client
//! URL token. Pure functions over already-parsed values; no HTTP types.
//!
//! - [`proxies`]: the client address behind trusted reverse proxies.
//! - [`signatures`]: Standard Webhooks, Meta and Google RBM signatures.
//! - [`secrets`]: secrets read from owner-only files.

pub mod proxies;
pub mod secrets;
pub mod signatures;

pub mod tokens;

use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ClientSettings, Settings};

/// Whether `ip` may post callbacks for `client`: the client's own `allow`
/// list if it has one, else `allowlist.default`. IPv4-mapped IPv6 addresses
/// are judged as IPv4.
pub fn ip_allowed(settings: &Settings, client: &ClientSettings, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let nets: &[IpNet] = client
        .allow
        .as_deref()
        .unwrap_or(&settings.allowlist.default);
    nets.iter().any(|n| n.contains(&ip))
}

/// Compares a presented URL token with the configured one in constant time
/// (both are hashed first, so their lengths leak nothing either).
pub fn token_matches(expected: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    a.ct_eq(&b).into()
}

/// Splits the `token` parameter out of a query string: returns its value and
/// the query without it, other parameters left byte for byte as sent.
pub fn take_token(query: &str) -> (Option<String>, String) {
    let mut token = None;
    let mut rest: Vec<&str> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        match form_urlencoded::parse(part.as_bytes()).next() {
            Some((k, v)) if k == "token" => token = Some(v.into_owned()),
            _ => rest.push(part),
        }
    }
    (token, rest.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_cut_out_and_the_rest_kept_as_sent() {
        let (t, rest) = take_token("mobile=91%2098&token=s%3Dcr3t&status=DELIVRD");
        assert_eq!(t.as_deref(), Some("s=cr3t"));
        assert_eq!(rest, "mobile=91%2098&status=DELIVRD");
        let (t, rest) = take_token("a=1");
        assert_eq!(t, None);
        assert_eq!(rest, "a=1");
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", Some("abc")));
        assert!(!token_matches("abc", Some("abd")));
        assert!(!token_matches("abc", Some("")));
        assert!(!token_matches("abc", None));
    }

    #[test]
    fn mapped_ipv6_is_judged_as_ipv4() {
        let settings = Settings::default();
        let client = &settings.clients[0];
        assert!(ip_allowed(
            &settings,
            client,
            "::ffff:127.0.0.1".parse().unwrap()
        ));
        assert!(ip_allowed(&settings, client, "::1".parse().unwrap()));
        assert!(!ip_allowed(&settings, client, "10.1.2.3".parse().unwrap()));
    }
}
