//! Secret brokering: a brokered `secretEnv` name reaches the sandbox only as a *sentinel*, a
//! random stand-in of the real value's shape; the egress proxy puts the real value in place of
//! the sentinel on the way to the hosts the secret is bound to, and refuses a request that
//! carries the sentinel anywhere else.
//!
//! This module owns the pure rules: what a broker entry is ([`Broker`]), how a sentinel is
//! derived ([`sentinel`]), and what to do with a request's parts ([`inspect`]). It reads no
//! file, never logs, and never holds a real value longer than the call that was given it.
//!
//! A sentinel is derived, not stored: SHA-256 in counter mode over a random per-sandbox seed
//! (the state database's `broker_seed`, replaced by every `apply`), the sandbox and the name,
//! mapped onto the real value's shape. Exec and the agent compute the same sentinel from the
//! seed and the secrets file, which both read anyway; the seed is not a secret (knowing it
//! gives the sentinel, which the sandbox has already), and the sentinel tells nothing about
//! the value but its length and character classes.

pub mod ca;

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::egress::{parse_allow_entry, policy::DestPattern, Dest, EgressPolicy};
use crate::verify::scan::{Encoding, Needles};

/// A sentinel must have at least this many random characters, so it cannot turn up by
/// accident in traffic (and the scan, which skips values under 8 bytes, sees it).
pub const MIN_RANDOM_CHARS: usize = 12;

/// The longest prefix kept as it is (`sk-ant-api03-`): a client that checks a key's prefix
/// still accepts the sentinel.
const MAX_PREFIX: usize = 16;

/// Where in a request the real value may be put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    Header,
    Query,
    Body,
    /// The requested host name: never declarable (a sentinel there is sent to DNS and to
    /// whoever serves the name).
    Destination,
}

impl Place {
    pub fn parse(s: &str) -> Option<Place> {
        match s {
            "header" => Some(Place::Header),
            "query" => Some(Place::Query),
            "body" => Some(Place::Body),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Place::Header => "header",
            Place::Query => "query",
            Place::Body => "body",
            Place::Destination => "destination",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated `broker` block: the destinations a secret is bound to and where in a request
/// it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Exact destinations, each with its port.
    pub hosts: Vec<(Dest, u16)>,
    pub places: BTreeSet<Place>,
}

impl Broker {
    /// Whether the secret is bound to `dest:port`.
    pub fn binds(&self, dest: &Dest, port: u16) -> bool {
        self.hosts.iter().any(|(d, p)| d == dest && *p == port)
    }
}

/// Parses one `broker.hosts` entry: `host:port` or `address:port`, exact (no wildcard, no
/// network, an explicit port).
pub fn parse_host(entry: &str) -> Result<(Dest, u16), String> {
    let parsed = parse_allow_entry(entry)?;
    let Some(port) = parsed.port else {
        return Err("a brokered host needs its port (`api.example.com:443`)".into());
    };
    match parsed.dest {
        DestPattern::Name(n) => Ok((Dest::Name(n), port)),
        DestPattern::Net { addr, prefix } if prefix == if addr.is_ipv4() { 32 } else { 128 } => {
            Ok((Dest::Ip(addr), port))
        }
        _ => {
            Err("a brokered host is one exact host or address, not a wildcard or a network".into())
        }
    }
}

/// Whether `policy` lets the sandbox reach `dest:port` at all (by its entries; resolution is
/// the proxy's business).
pub fn on_allow_list(policy: &EgressPolicy, dest: &Dest, port: u16) -> bool {
    policy.allows(dest, port)
}

/// Where the random part of a value's sentinel starts: after the last `-` or `_` among its
/// first [`MAX_PREFIX`] characters, when at least half of the value remains.
fn prefix_len(value: &str) -> usize {
    let chars: Vec<char> = value.chars().collect();
    let window = MAX_PREFIX.min(chars.len() / 2);
    chars[..window]
        .iter()
        .rposition(|c| *c == '-' || *c == '_')
        .map(|i| chars[..=i].iter().map(|c| c.len_utf8()).sum())
        .unwrap_or(0)
}

/// How many characters of `value`'s sentinel are random (ASCII letters and digits after the
/// kept prefix).
pub fn random_chars(value: &str) -> usize {
    value[prefix_len(value)..]
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .count()
}

/// The sentinel standing in for `value` in `sandbox`'s exec environment: the same length, the
/// same prefix, and each ASCII letter or digit after it replaced by a random one of its class
/// (other characters kept), from `seed`, `sandbox` and `name`.
pub fn sentinel(seed: &[u8], sandbox: &str, name: &str, value: &str) -> String {
    let keep = prefix_len(value);
    let mut stream = Stream::new(seed, sandbox, name);
    let mut out = String::with_capacity(value.len());
    out.push_str(&value[..keep]);
    for c in value[keep..].chars() {
        let pick = |stream: &mut Stream, base: u8, n: u8| (base + stream.below(n)) as char;
        out.push(match c {
            'a'..='z' => pick(&mut stream, b'a', 26),
            'A'..='Z' => pick(&mut stream, b'A', 26),
            '0'..='9' => pick(&mut stream, b'0', 10),
            other => other,
        });
    }
    out
}

/// SHA-256 in counter mode: the random bytes a sentinel is drawn from.
struct Stream {
    base: Sha256,
    counter: u64,
    block: Vec<u8>,
}

impl Stream {
    fn new(seed: &[u8], sandbox: &str, name: &str) -> Stream {
        let mut base = Sha256::new();
        base.update(b"clw-fortress broker sentinel v1\0");
        base.update((seed.len() as u64).to_be_bytes());
        base.update(seed);
        base.update(sandbox.as_bytes());
        base.update([0]);
        base.update(name.as_bytes());
        base.update([0]);
        Stream {
            base,
            counter: 0,
            block: Vec::new(),
        }
    }

    fn byte(&mut self) -> u8 {
        if self.block.is_empty() {
            let mut h = self.base.clone();
            h.update(self.counter.to_be_bytes());
            self.counter += 1;
            self.block = h.finalize().to_vec();
        }
        self.block.pop().expect("a block is 32 bytes")
    }

    /// A uniform value below `n` (rejection sampling, no modulo bias).
    fn below(&mut self, n: u8) -> u8 {
        let limit = 256 - (256 % n as u16);
        loop {
            let b = self.byte();
            if (b as u16) < limit {
                return b % n;
            }
        }
    }
}

/// One brokered secret of a sandbox, as the proxy sees it for one request.
pub struct Bound<'a> {
    pub name: &'a str,
    pub sentinel: String,
    pub value: String,
    pub broker: &'a Broker,
}

/// A sentinel found where it may not go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub name: String,
    pub place: Place,
    pub encoding: Encoding,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secret {} ({}) in the {}",
            self.name,
            self.encoding.as_str(),
            self.place
        )
    }
}

/// The sentinels of `bound`, in every form the verify scan knows.
pub fn needles(bound: &[Bound<'_>]) -> Needles {
    Needles::from_pairs(bound.iter().map(|b| (b.name, b.sentinel.as_str())), 1)
}

/// Checks one part of a request going to `dest:port`: every sentinel in it (any encoding)
/// must belong to a secret bound to that destination and declared for `place`. Returns the
/// first that is not.
pub fn check_part(
    needles: &Needles,
    bound: &[Bound<'_>],
    dest: &Dest,
    port: u16,
    place: Place,
    bytes: &[u8],
) -> Option<Breach> {
    for hit in needles.hits_in(bytes) {
        let name = &needles.keys()[hit.key];
        let Some(b) = bound.iter().find(|b| b.name == name) else {
            continue;
        };
        if !(b.broker.binds(dest, port) && b.broker.places.contains(&place)) {
            return Some(Breach {
                name: name.clone(),
                place,
                encoding: hit.encoding,
            });
        }
    }
    None
}

/// `bytes` with every sentinel (as written) of a secret bound to `dest:port` for `place`
/// replaced by its value; `None` when nothing was replaced.
pub fn substitute(
    bound: &[Bound<'_>],
    dest: &Dest,
    port: u16,
    place: Place,
    bytes: &[u8],
) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for b in bound
        .iter()
        .filter(|b| b.broker.binds(dest, port) && b.broker.places.contains(&place))
    {
        let current = out.as_deref().unwrap_or(bytes);
        if let Some(replaced) = replace_all(current, b.sentinel.as_bytes(), b.value.as_bytes()) {
            out = Some(replaced);
        }
    }
    out
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    if from.is_empty() {
        return None;
    }
    let finder = memchr::memmem::Finder::new(from);
    let mut out = Vec::with_capacity(hay.len());
    let mut last = 0;
    for at in finder.find_iter(hay) {
        out.extend_from_slice(&hay[last..at]);
        out.extend_from_slice(to);
        last = at + from.len();
    }
    if last == 0 {
        return None;
    }
    out.extend_from_slice(&hay[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-api03-Abc1Def2Ghi3Jkl4Mno5Pqr6Stu7Vwx8-yzAB_cdEF";

    #[test]
    fn a_sentinel_keeps_the_shape_and_prefix_but_not_the_value() {
        let s = sentinel(b"seed", "sbx", "ANTHROPIC_API_KEY", KEY);
        assert_eq!(s.len(), KEY.len());
        assert!(s.starts_with("sk-ant-api03-"), "{s}");
        assert_ne!(s, KEY);
        for (a, b) in s.chars().zip(KEY.chars()) {
            assert_eq!(a.is_ascii_lowercase(), b.is_ascii_lowercase(), "{s}");
            assert_eq!(a.is_ascii_uppercase(), b.is_ascii_uppercase(), "{s}");
            assert_eq!(a.is_ascii_digit(), b.is_ascii_digit(), "{s}");
            if !b.is_ascii_alphanumeric() {
                assert_eq!(a, b);
            }
        }
        // No run of the real value's random part survives.
        assert!(!s.contains(&KEY[13..21]), "{s}");
    }

    #[test]
    fn a_sentinel_is_stable_for_a_seed_and_changes_with_it_and_the_sandbox() {
        let a = sentinel(b"seed", "sbx", "K", KEY);
        assert_eq!(a, sentinel(b"seed", "sbx", "K", KEY));
        assert_ne!(a, sentinel(b"seed2", "sbx", "K", KEY));
        assert_ne!(a, sentinel(b"seed", "other", "K", KEY));
        assert_ne!(a, sentinel(b"seed", "sbx", "K2", KEY));
    }

    #[test]
    fn the_prefix_is_kept_only_up_to_the_last_separator_of_the_first_half() {
        for (value, prefix) in [
            ("ghp_0123456789abcdefghij", "ghp_"),
            ("0123456789abcdef", ""),
            ("ab-cd", ""),
            ("sk-ant-api03-xxxxxxxxxxxxxxxxxxxx", "sk-ant-api03-"),
        ] {
            assert_eq!(&value[..prefix_len(value)], prefix, "{value}");
        }
        assert_eq!(random_chars("ghp_0123456789abcdefghij"), 20);
        assert_eq!(random_chars("ab-cd"), 4);
    }

    #[test]
    fn broker_hosts_are_exact_with_a_port() {
        assert_eq!(
            parse_host("API.example.com:443").unwrap(),
            (Dest::Name("api.example.com".into()), 443)
        );
        assert_eq!(
            parse_host("10.0.0.5:8443").unwrap(),
            (Dest::Ip("10.0.0.5".parse().unwrap()), 8443)
        );
        for bad in ["api.example.com", "*.example.com:443", "10.0.0.0/8:443", ""] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }

    fn broker(hosts: &[&str], places: &[Place]) -> Broker {
        Broker {
            hosts: hosts.iter().map(|h| parse_host(h).unwrap()).collect(),
            places: places.iter().copied().collect(),
        }
    }

    #[test]
    fn a_sentinel_passes_only_to_its_host_in_its_places_and_is_replaced_there() {
        let b = broker(&["api.example.com:443"], &[Place::Header]);
        let s = sentinel(b"seed", "sbx", "KEY", KEY);
        let bound = [Bound {
            name: "KEY",
            sentinel: s.clone(),
            value: KEY.into(),
            broker: &b,
        }];
        let n = needles(&bound);
        let api = Dest::Name("api.example.com".into());
        let evil = Dest::Name("evil.example".into());
        let header = format!("Bearer {s}");
        // (destination, port, place, bytes) -> breach?
        let cases: Vec<(&Dest, u16, Place, Vec<u8>, bool)> = vec![
            (&api, 443, Place::Header, header.clone().into_bytes(), false),
            (&api, 80, Place::Header, header.clone().into_bytes(), true),
            (
                &api,
                443,
                Place::Query,
                format!("/v1?k={s}").into_bytes(),
                true,
            ),
            (&evil, 443, Place::Header, header.clone().into_bytes(), true),
            (
                &evil,
                443,
                Place::Body,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &s).into_bytes(),
                true,
            ),
            (&evil, 443, Place::Body, hex::encode(&s).into_bytes(), true),
            (&evil, 443, Place::Body, b"nothing here".to_vec(), false),
        ];
        for (dest, port, place, bytes, breach) in cases {
            assert_eq!(
                check_part(&n, &bound, dest, port, place, &bytes).is_some(),
                breach,
                "{dest}:{port} {place}"
            );
        }
        assert_eq!(
            substitute(&bound, &api, 443, Place::Header, header.as_bytes()).unwrap(),
            format!("Bearer {KEY}").into_bytes()
        );
        assert_eq!(
            substitute(&bound, &api, 443, Place::Body, header.as_bytes()),
            None
        );
        assert_eq!(
            substitute(&bound, &evil, 443, Place::Header, header.as_bytes()),
            None
        );
    }
}
