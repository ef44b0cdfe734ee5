//! The egress allow-list as a value, and the one decision made with it: may this sandbox open
//! a connection to `host:port`, and to which addresses.
//!
//! Pure: no I/O, no clock, no resolver. The proxy resolves names and hands the answers in;
//! [`decide`] returns the addresses the proxy may connect to, so the proxy connects to what was
//! checked and nothing else (no second resolution that a rebinding DNS could answer
//! differently). Parsing of allow entries lives here too, so the manifest and the proxy share
//! one grammar.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ports an entry without `:port` allows.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// A validated `egress` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    /// What may be reached, in declaration order.
    pub allow: Vec<AllowEntry>,
    /// Pinned resolution: lower-case name (no trailing dot) -> the one address it means.
    /// A pinned name is never looked up, and its address is trusted even when private.
    pub hosts: BTreeMap<String, IpAddr>,
}

/// One `egress.allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub dest: DestPattern,
    /// `None`: the default ports (80 and 443).
    pub port: Option<u16>,
}

/// The destination half of an allow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestPattern {
    /// An exact host name, lower case, without a trailing dot.
    Name(String),
    /// `*.<suffix>`: exactly one label in front of `suffix` (which has at least two labels).
    /// `*.example.com` matches `a.example.com`, not `example.com` nor `a.b.example.com`.
    Wildcard(String),
    /// An address or a network (`prefix` = 32 or 128 for a single address).
    Net { addr: IpAddr, prefix: u8 },
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dest = match &self.dest {
            DestPattern::Name(n) => n.clone(),
            DestPattern::Wildcard(s) => format!("*.{s}"),
            DestPattern::Net { addr, prefix } if *prefix == max_prefix(*addr) => addr.to_string(),
            DestPattern::Net { addr, prefix } => format!("{addr}/{prefix}"),
        };
        match (self.port, &self.dest) {
            (None, _) => f.write_str(&dest),
            (
                Some(p),
                DestPattern::Net {
                    addr: IpAddr::V6(_),
                    ..
                },
            ) => write!(f, "[{dest}]:{p}"),
            (Some(p), _) => write!(f, "{dest}:{p}"),
        }
    }
}

impl AllowEntry {
    fn port_matches(&self, port: u16) -> bool {
        match self.port {
            Some(p) => p == port,
            None => DEFAULT_PORTS.contains(&port),
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Parses one allow entry. The message of an error names what is wrong, for the manifest's
/// problem list.
pub fn parse_allow_entry(entry: &str) -> Result<AllowEntry, String> {
    if entry.is_empty() {
        return Err("an allow entry is empty".into());
    }
    if entry.trim() != entry || entry.contains(char::is_whitespace) {
        return Err("an allow entry contains whitespace".into());
    }
    let (dest, port) = split_port(entry)?;
    if let Some(net) = parse_net(dest)? {
        return Ok(AllowEntry { dest: net, port });
    }
    if dest == "*" {
        return Err("`*` allows every destination; list the hosts the sandbox needs".into());
    }
    let (wildcard, name) = match dest.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, dest),
    };
    let name = normalise_name(name).map_err(|m| format!("`{dest}`: {m}"))?;
    if wildcard {
        if name.split('.').count() < 2 {
            return Err(format!(
                "`{dest}` is too broad: a wildcard needs at least two labels after it (`*.example.com`)"
            ));
        }
        Ok(AllowEntry {
            dest: DestPattern::Wildcard(name),
            port,
        })
    } else {
        Ok(AllowEntry {
            dest: DestPattern::Name(name),
            port,
        })
    }
}

/// `dest[:port]`, `[v6 or v6/len][:port]`, or a bare IPv6 address or network (no port).
fn split_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing `]` after an IPv6 address".to_string())?;
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((inside, Some(parse_port(p)?))),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    if entry.matches(':').count() > 1 {
        // A bare IPv6 address: its colons are not a port separator. Write `[addr]:port`.
        return Ok((entry, None));
    }
    match entry.split_once(':') {
        Some((dest, p)) => Ok((dest, Some(parse_port(p)?))),
        None => Ok((entry, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("`{p}` is not a port (1 to 65535)")),
    }
}

/// An address or `addr/len`; `Ok(None)` when `dest` is not written as one.
fn parse_net(dest: &str) -> Result<Option<DestPattern>, String> {
    let (addr, len) = match dest.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (dest, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        if len.is_some() {
            return Err(format!(
                "`{dest}` is not a network (`10.1.0.0/16`, `fd00::/8`)"
            ));
        }
        return Ok(None);
    };
    let max = max_prefix(addr);
    let prefix = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max && l.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("`{dest}`: the prefix length must be 0 to {max}")),
        },
    };
    if prefix == 0 {
        return Err(format!(
            "`{dest}` allows every address; list the networks the sandbox needs"
        ));
    }
    if mask(addr, prefix) != addr {
        return Err(format!(
            "`{dest}` has host bits set; the network is `{}/{prefix}`",
            mask(addr, prefix)
        ));
    }
    Ok(Some(DestPattern::Net { addr, prefix }))
}

/// A host name in the form the allow-list compares: lower case, no trailing dot, LDH labels
/// of 1..=63 bytes, at most 253 bytes. Non-ASCII names must be written in punycode (`xn--`):
/// two spellings of one name must not compare differently.
pub fn normalise_name(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("the host name is empty".into());
    }
    if !name.is_ascii() {
        return Err(
            "a non-ASCII (IDN) name must be written in its punycode form (`xn--...`)".into(),
        );
    }
    if name.len() > 253 {
        return Err("a host name has at most 253 characters".into());
    }
    let name = name.to_ascii_lowercase();
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("every label of a host name has 1 to 63 characters".into());
        }
        if label.contains('*') {
            return Err(
                "a wildcard is only allowed as the whole first label (`*.example.com`)".into(),
            );
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "label `{label}` may hold only a-z, 0-9 and inner `-`"
            ));
        }
    }
    // `127.1` or `2130706433` are not names: the system resolver reads them as addresses.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "an all-numeric last label reads as an address; write the address itself".into(),
        );
    }
    Ok(name)
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

fn net_contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    matches!(
        (net, ip),
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
    ) && mask(ip, prefix) == net
}

/// `::ffff:10.0.0.1` is 10.0.0.1: an IPv4-mapped address is judged as the IPv4 it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The internal range an address falls in, if any: where a sandbox must not be sent by a
/// name's DNS answer (the host, its neighbours, the cloud metadata service).
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    const V4: &[(Ipv4Addr, u8, &str)] = &[
        (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified (0.0.0.0/8)"),
        (Ipv4Addr::new(10, 0, 0, 0), 8, "private (10.0.0.0/8)"),
        (Ipv4Addr::new(100, 64, 0, 0), 10, "CGNAT (100.64.0.0/10)"),
        (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (127.0.0.0/8)"),
        (
            Ipv4Addr::new(169, 254, 0, 0),
            16,
            "link-local (169.254.0.0/16, cloud metadata)",
        ),
        (Ipv4Addr::new(172, 16, 0, 0), 12, "private (172.16.0.0/12)"),
        (
            Ipv4Addr::new(192, 168, 0, 0),
            16,
            "private (192.168.0.0/16)",
        ),
        (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (224.0.0.0/4)"),
        (
            Ipv4Addr::new(240, 0, 0, 0),
            4,
            "reserved or broadcast (240.0.0.0/4)",
        ),
    ];
    const V6: &[(Ipv6Addr, u8, &str)] = &[
        (Ipv6Addr::UNSPECIFIED, 128, "unspecified (::)"),
        (Ipv6Addr::LOCALHOST, 128, "loopback (::1)"),
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            "unique local (fc00::/7)",
        ),
        (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
            "link-local (fe80::/10)",
        ),
        (
            Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
            8,
            "multicast (ff00::/8)",
        ),
    ];
    let ip = canonical(ip);
    match ip {
        IpAddr::V4(_) => V4
            .iter()
            .find(|(net, len, _)| net_contains(IpAddr::V4(*net), *len, ip))
            .map(|(_, _, what)| *what),
        IpAddr::V6(_) => V6
            .iter()
            .find(|(net, len, _)| net_contains(IpAddr::V6(*net), *len, ip))
            .map(|(_, _, what)| *what),
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// No allow entry matches the destination.
    NotAllowed,
    /// The name is allowed but resolved to an internal address that is not itself allowed.
    InternalAddress { addr: IpAddr, range: &'static str },
    /// The name is allowed but has no address.
    Unresolved,
}

impl DenyReason {
    /// A short stable word for audit rows and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DenyReason::NotAllowed => "not-allowed",
            DenyReason::InternalAddress { .. } => "internal-address",
            DenyReason::Unresolved => "unresolved",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::NotAllowed => f.write_str("no egress.allow entry matches"),
            DenyReason::InternalAddress { addr, range } => write!(
                f,
                "the name resolves to {addr}, a {range} address; allow that address, or pin \
                 the name under egress.hosts"
            ),
            DenyReason::Unresolved => f.write_str("the name has no address"),
        }
    }
}

/// The outcome for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Connect to these addresses (in order), and to nothing else.
    Allow { connect_to: Vec<IpAddr> },
    /// Refuse; `rule_needed` is the allow entry that would permit it (`host:port`).
    Deny {
        rule_needed: String,
        reason: DenyReason,
    },
}

/// A requested destination: an address as written (`10.0.0.5`, `[::1]`) or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Ip(IpAddr),
    Name(String),
}

impl Dest {
    /// Reads a request's host: brackets and a trailing dot are dropped, names lower-cased.
    /// A host that is neither an address nor a valid name is `None`.
    pub fn parse(host: &str) -> Option<Dest> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(Dest::Ip(canonical(ip)));
        }
        normalise_name(bare).ok().map(Dest::Name)
    }

    /// `host:port` as an allow entry would spell it.
    pub fn rule(&self, port: u16) -> String {
        match self {
            Dest::Ip(IpAddr::V6(a)) => format!("[{a}]:{port}"),
            Dest::Ip(a) => format!("{a}:{port}"),
            Dest::Name(n) => format!("{n}:{port}"),
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Ip(a) => write!(f, "{a}"),
            Dest::Name(n) => f.write_str(n),
        }
    }
}

impl EgressPolicy {
    fn ip_allowed(&self, ip: IpAddr, port: u16) -> bool {
        self.allow.iter().any(|e| {
            e.port_matches(port)
                && matches!(e.dest, DestPattern::Net { addr, prefix } if net_contains(addr, prefix, ip))
        })
    }

    fn name_allowed(&self, name: &str, port: u16) -> bool {
        self.allow.iter().any(|e| {
            e.port_matches(port)
                && match &e.dest {
                    DestPattern::Name(n) => n == name,
                    DestPattern::Wildcard(suffix) => name
                        .strip_suffix(suffix.as_str())
                        .and_then(|front| front.strip_suffix('.'))
                        .is_some_and(|label| !label.is_empty() && !label.contains('.')),
                    DestPattern::Net { .. } => false,
                }
        })
    }

    /// Whether an entry allows `dest:port` (before any resolution: the proxy still checks the
    /// addresses a name resolves to).
    pub fn allows(&self, dest: &Dest, port: u16) -> bool {
        match dest {
            Dest::Ip(ip) => self.ip_allowed(*ip, port),
            Dest::Name(n) => self.name_allowed(n, port),
        }
    }

    /// The address a pinned name means.
    pub fn pinned(&self, name: &str) -> Option<IpAddr> {
        self.hosts.get(name).copied()
    }

    /// Whether the proxy has to resolve `dest` before [`decide`] can answer: an allowed,
    /// unpinned name. A name no entry allows is refused without a lookup (no DNS query leaks
    /// what the sandbox tried).
    pub fn needs_lookup(&self, dest: &Dest, port: u16) -> bool {
        match dest {
            Dest::Name(n) => self.pinned(n).is_none() && self.name_allowed(n, port),
            Dest::Ip(_) => false,
        }
    }
}

/// The decision for one connection to `dest:port`. `resolved` is what the resolver answered
/// for an unpinned name (ignored for addresses and pinned names).
///
/// An address is matched against address and network entries only. A name must match a name
/// or wildcard entry; then each of its addresses must be public, or be allowed itself, or the
/// name must be pinned: one internal answer refuses the whole name (a rebinding DNS answers
/// with a public and an internal address alike).
pub fn decide(policy: &EgressPolicy, dest: &Dest, port: u16, resolved: &[IpAddr]) -> Decision {
    let deny = |reason| Decision::Deny {
        rule_needed: dest.rule(port),
        reason,
    };
    match dest {
        Dest::Ip(ip) => {
            if policy.ip_allowed(*ip, port) {
                Decision::Allow {
                    connect_to: vec![*ip],
                }
            } else {
                deny(DenyReason::NotAllowed)
            }
        }
        Dest::Name(name) => {
            if !policy.name_allowed(name, port) {
                return deny(DenyReason::NotAllowed);
            }
            if let Some(pinned) = policy.pinned(name) {
                return Decision::Allow {
                    connect_to: vec![pinned],
                };
            }
            if resolved.is_empty() {
                return deny(DenyReason::Unresolved);
            }
            let addrs: Vec<IpAddr> = resolved.iter().map(|ip| canonical(*ip)).collect();
            for ip in &addrs {
                if let Some(range) = special_range(*ip) {
                    if !policy.ip_allowed(*ip, port) {
                        return Decision::Deny {
                            rule_needed: Dest::Ip(*ip).rule(port),
                            reason: DenyReason::InternalAddress { addr: *ip, range },
                        };
                    }
                }
            }
            Decision::Allow { connect_to: addrs }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], hosts: &[(&str, &str)]) -> EgressPolicy {
        EgressPolicy {
            allow: allow
                .iter()
                .map(|e| parse_allow_entry(e).unwrap())
                .collect(),
            hosts: hosts
                .iter()
                .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
                .collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allow_entries_parse_into_their_typed_form_and_print_back() {
        for (entry, printed) in [
            ("api.anthropic.com:443", "api.anthropic.com:443"),
            ("PyPI.org.", "pypi.org"),
            ("*.pythonhosted.org:443", "*.pythonhosted.org:443"),
            ("10.0.0.5:5432", "10.0.0.5:5432"),
            ("10.1.0.0/16:443", "10.1.0.0/16:443"),
            ("fd00::/8", "fd00::/8"),
            ("[2001:db8::1]:8443", "[2001:db8::1]:8443"),
            ("[2001:db8::/32]", "2001:db8::/32"),
            ("2001:db8::1", "2001:db8::1"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("internal", "internal"),
        ] {
            let parsed = parse_allow_entry(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
            assert_eq!(parsed.to_string(), printed, "{entry}");
        }
    }

    #[test]
    fn broad_and_malformed_entries_are_rejected_with_the_reason() {
        for (entry, says) in [
            ("", "empty"),
            (" pypi.org", "whitespace"),
            ("*", "every destination"),
            ("*.com", "too broad"),
            ("*.com:443", "too broad"),
            ("0.0.0.0/0", "every address"),
            ("::/0", "every address"),
            ("[::/0]:443", "every address"),
            ("pypi.org:0", "not a port"),
            ("pypi.org:65536", "not a port"),
            ("pypi.org:+443", "not a port"),
            ("pypi.org:", "not a port"),
            ("10.1.2.3/16", "host bits"),
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0/8", "not a network"),
            ("a.*.example.com", "wildcard"),
            ("*example.com", "wildcard"),
            ("bad_label.example", "label"),
            ("-a.example", "label"),
            ("a..example", "1 to 63"),
            ("bücher.example", "punycode"),
            ("127.1", "all-numeric"),
            ("2130706433:80", "all-numeric"),
            ("[::1", "missing `]`"),
            ("[::1]x", "unexpected"),
        ] {
            let err = parse_allow_entry(entry).expect_err(entry);
            assert!(err.contains(says), "{entry:?}: {err}");
        }
    }

    #[test]
    fn names_match_exactly_case_insensitively_and_on_the_default_ports() {
        let p = policy(&["pypi.org", "api.anthropic.com:443"], &[]);
        let pub_ip = [ip("151.101.0.223")];
        for (host, port, allowed) in [
            ("pypi.org", 443, true),
            ("pypi.org", 80, true),
            ("PYPI.ORG.", 443, true),
            ("pypi.org", 8080, false),
            ("www.pypi.org", 443, false),
            ("api.anthropic.com", 443, true),
            ("api.anthropic.com", 80, false),
            ("anthropic.com", 443, false),
        ] {
            let dest = Dest::parse(host).unwrap();
            let d = decide(&p, &dest, port, &pub_ip);
            assert_eq!(
                matches!(d, Decision::Allow { .. }),
                allowed,
                "{host}:{port}"
            );
        }
    }

    #[test]
    fn a_wildcard_matches_exactly_one_label_in_front() {
        let p = policy(&["*.pythonhosted.org:443"], &[]);
        let pub_ip = [ip("151.101.0.223")];
        for (host, allowed) in [
            ("files.pythonhosted.org", true),
            ("FILES.pythonhosted.org.", true),
            ("pythonhosted.org", false),
            ("a.b.pythonhosted.org", false),
            ("evilpythonhosted.org", false),
        ] {
            let d = decide(&p, &Dest::parse(host).unwrap(), 443, &pub_ip);
            assert_eq!(matches!(d, Decision::Allow { .. }), allowed, "{host}");
        }
    }

    #[test]
    fn addresses_are_matched_as_addresses_against_address_and_network_entries() {
        let p = policy(
            &["10.0.0.5:5432", "10.1.0.0/16:443", "fd00::/8", "pypi.org"],
            &[],
        );
        for (host, port, allowed) in [
            ("10.0.0.5", 5432, true),
            ("10.0.0.5", 443, false),
            ("10.1.200.3", 443, true),
            ("10.2.0.1", 443, false),
            ("[fd00::7]", 80, true),
            ("fd00::7", 443, true),
            ("[fe80::1]", 443, false),
            ("::ffff:10.0.0.5", 5432, true),
            // A name entry never allows an address, whatever the name resolves to.
            ("151.101.0.223", 443, false),
        ] {
            let d = decide(&p, &Dest::parse(host).unwrap(), port, &[]);
            assert_eq!(
                matches!(d, Decision::Allow { .. }),
                allowed,
                "{host}:{port}"
            );
        }
    }

    #[test]
    fn a_name_resolving_to_an_internal_address_is_refused_with_the_address_rule() {
        let p = policy(
            &["metadata.test:80", "db.test:5432", "10.9.0.0/16:5432"],
            &[],
        );
        let cases = [
            ("169.254.169.254", "link-local"),
            ("127.0.0.1", "loopback"),
            ("10.0.0.1", "private"),
            ("172.20.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "CGNAT"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd12::1", "unique local"),
            ("::ffff:169.254.169.254", "link-local"),
        ];
        for (addr, range) in cases {
            let d = decide(&p, &Dest::parse("metadata.test").unwrap(), 80, &[ip(addr)]);
            let Decision::Deny {
                rule_needed,
                reason,
            } = d
            else {
                panic!("{addr} allowed");
            };
            assert!(reason.to_string().contains(range), "{addr}: {reason}");
            assert!(rule_needed.ends_with(":80"), "{rule_needed}");
            assert!(matches!(reason, DenyReason::InternalAddress { .. }));
        }
        // One internal answer among public ones refuses the name.
        let d = decide(
            &p,
            &Dest::parse("metadata.test").unwrap(),
            80,
            &[ip("151.101.0.223"), ip("169.254.169.254")],
        );
        assert!(matches!(d, Decision::Deny { .. }));
        // An internal address covered by an allowed network is fine.
        let d = decide(
            &p,
            &Dest::parse("db.test").unwrap(),
            5432,
            &[ip("10.9.3.4")],
        );
        assert_eq!(
            d,
            Decision::Allow {
                connect_to: vec![ip("10.9.3.4")]
            }
        );
    }

    #[test]
    fn a_pinned_name_connects_to_its_pinned_address_only() {
        let p = policy(
            &["internal.example:443"],
            &[("internal.example", "10.0.0.7")],
        );
        let dest = Dest::parse("Internal.Example.").unwrap();
        assert!(!p.needs_lookup(&dest, 443));
        // Whatever a resolver said is ignored.
        let d = decide(&p, &dest, 443, &[ip("203.0.113.9")]);
        assert_eq!(
            d,
            Decision::Allow {
                connect_to: vec![ip("10.0.0.7")]
            }
        );
        // Pinning does not allow: the entry still has to match.
        assert!(matches!(decide(&p, &dest, 80, &[]), Decision::Deny { .. }));
    }

    #[test]
    fn an_unallowed_name_is_denied_without_a_lookup_and_names_the_rule() {
        let p = policy(&["pypi.org"], &[]);
        let dest = Dest::parse("evil.test").unwrap();
        assert!(!p.needs_lookup(&dest, 443));
        assert_eq!(
            decide(&p, &dest, 443, &[]),
            Decision::Deny {
                rule_needed: "evil.test:443".into(),
                reason: DenyReason::NotAllowed
            }
        );
        assert!(p.needs_lookup(&Dest::parse("pypi.org").unwrap(), 443));
        assert!(matches!(
            decide(&p, &Dest::parse("pypi.org").unwrap(), 443, &[]),
            Decision::Deny {
                reason: DenyReason::Unresolved,
                ..
            }
        ));
        assert_eq!(
            Dest::parse("[2001:db8::1]").unwrap().rule(443),
            "[2001:db8::1]:443"
        );
    }

    #[test]
    fn a_request_host_that_is_neither_an_address_nor_a_name_is_unreadable() {
        for host in ["", "a b", "exa_mple.com", "*.example.com", "127.1"] {
            assert_eq!(Dest::parse(host), None, "{host:?}");
        }
    }
}
