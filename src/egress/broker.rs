//! The egress proxy's half of secret brokering (crate::broker): what it needs to broker one
//! sandbox's secrets ([`Brokering`]), the TLS configurations of both sides, and the rewriting
//! of one request's head and body (refuse a sentinel out of place, put the value in where it
//! is bound).
//!
//! Values are read from the secrets file for each request (a rotated key is used at once) and
//! dropped with the request; they are never logged, and neither are the sentinels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use secrecy::ExposeSecret;

use super::policy::Dest;
use crate::broker::ca::Ca;
use crate::broker::{self, Bound, Breach, Broker, Place};
use crate::secrets::{self, SecretMap};

/// The largest request body searched and rewritten; a larger one (or one without a
/// `content-length`) is passed on as it is, unsearched.
pub const MAX_BODY: u64 = 1 << 20;

/// Extra upstream trust anchors for the broker's TLS connections: PEM files, separated by
/// `:`. For a private or test CA; the system and web roots are always trusted.
pub const TRUST_ENV: &str = "CLW_FORTRESS_BROKER_TRUST";

/// One sandbox's brokered secrets, as its proxy serves them.
pub struct Brokering {
    pub brokers: BTreeMap<String, Broker>,
    pub secrets_file: PathBuf,
    /// The uid the secrets file must belong to.
    pub secrets_uid: u32,
    pub ca: Arc<Ca>,
    pub upstream: Arc<rustls::ClientConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the trust anchors in {path}: {message}")]
    Trust { path: PathBuf, message: String },
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The upstream side: full verification (chain and name) against the web roots, the system
/// roots in `system_roots` when readable, and every certificate in `extra`.
pub fn upstream_config(
    system_roots: &Path,
    extra: &[PathBuf],
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Ok(iter) = CertificateDer::pem_file_iter(system_roots) {
        // A root the parser cannot use is skipped, as every TLS stack reading this file does.
        let _ = roots.add_parsable_certificates(iter.flatten());
    }
    for path in extra {
        let trust = |message: String| TlsSetupError::Trust {
            path: path.clone(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| trust(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| trust(e.to_string()))?;
        if certs.is_empty() {
            return Err(trust("no certificate in it".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| trust(e.to_string()))?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The extra trust anchors named by [`TRUST_ENV`].
pub fn trust_from_env() -> Vec<PathBuf> {
    std::env::var_os(TRUST_ENV)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The sandbox side, for one brokered host: a fresh leaf of the fortress CA.
pub fn server_config(ca: &Ca, host: &Dest) -> Result<rustls::ServerConfig, String> {
    let (chain, key) = ca.leaf(host).map_err(|e| e.to_string())?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The name the upstream certificate must carry.
pub fn server_name(dest: &Dest) -> Option<ServerName<'static>> {
    match dest {
        Dest::Ip(ip) => Some(ServerName::IpAddress((*ip).into())),
        Dest::Name(n) => ServerName::try_from(n.clone()).ok(),
    }
}

impl Brokering {
    /// Whether any brokered secret is bound to `dest:port` (the proxy terminates TLS there).
    pub fn binds(&self, dest: &Dest, port: u16) -> bool {
        self.brokers.values().any(|b| b.binds(dest, port))
    }

    /// Reads the secrets file now.
    pub fn read_secrets(&self) -> Result<SecretMap, secrets::SecretsError> {
        secrets::read(&self.secrets_file, self.secrets_uid)
    }

    /// The brokered secrets of `sandbox` with their sentinels from `seed`, values from `map`.
    pub fn bound<'a>(&'a self, map: &SecretMap, seed: &[u8], sandbox: &str) -> Vec<Bound<'a>> {
        self.brokers
            .iter()
            .filter_map(|(name, b)| {
                let value = map.get(name)?.expose_secret();
                Some(Bound {
                    name,
                    sentinel: broker::sentinel(seed, sandbox, name, value),
                    value: value.to_string(),
                    broker: b,
                })
            })
            .collect()
    }
}

/// Refuses a sentinel in the requested host name (never a bound place).
pub fn check_destination(bound: &[Bound<'_>], dest: &Dest, port: u16) -> Result<(), Breach> {
    if bound.is_empty() {
        return Ok(());
    }
    let needles = broker::needles(bound);
    match broker::check_part(
        &needles,
        bound,
        dest,
        port,
        Place::Destination,
        dest.to_string().as_bytes(),
    ) {
        Some(b) => Err(b),
        None => Ok(()),
    }
}

/// Checks and rewrites a request head going to `dest:port`: the destination itself (a
/// sentinel in a host name is refused everywhere), the path and query, every header value.
pub fn rewrite_head(
    bound: &[Bound<'_>],
    dest: &Dest,
    port: u16,
    parts: &mut hyper::http::request::Parts,
) -> Result<(), Breach> {
    if bound.is_empty() {
        return Ok(());
    }
    check_destination(bound, dest, port)?;
    let needles = broker::needles(bound);
    if let Some(pq) = parts.uri.path_and_query().map(|p| p.as_str().to_string()) {
        if let Some(b) =
            broker::check_part(&needles, bound, dest, port, Place::Query, pq.as_bytes())
        {
            return Err(b);
        }
        if let Some(new) = broker::substitute(bound, dest, port, Place::Query, pq.as_bytes()) {
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = String::from_utf8(new).ok().and_then(|s| s.parse().ok());
            if let Ok(u) = hyper::Uri::from_parts(uri) {
                parts.uri = u;
            }
        }
    }
    for (_, value) in parts.headers.iter_mut() {
        let bytes = value.as_bytes();
        if let Some(b) = broker::check_part(&needles, bound, dest, port, Place::Header, bytes) {
            return Err(b);
        }
        if let Some(new) = broker::substitute(bound, dest, port, Place::Header, bytes) {
            if let Ok(v) = HeaderValue::from_bytes(&new) {
                *value = v;
            }
        }
    }
    Ok(())
}

/// Whether a request's body is searched: a `content-length` up to [`MAX_BODY`] and no
/// transfer coding. `Some(0)`: no body.
pub fn searchable_body_len(headers: &hyper::HeaderMap) -> Option<u64> {
    if headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    match headers.get(CONTENT_LENGTH) {
        None => Some(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|n| *n <= MAX_BODY),
    }
}

/// Checks and rewrites a whole (small) body going to `dest:port`.
pub fn rewrite_body(
    bound: &[Bound<'_>],
    dest: &Dest,
    port: u16,
    body: Bytes,
) -> Result<Bytes, Breach> {
    if bound.is_empty() || body.is_empty() {
        return Ok(body);
    }
    let needles = broker::needles(bound);
    if let Some(b) = broker::check_part(&needles, bound, dest, port, Place::Body, &body) {
        return Err(b);
    }
    Ok(broker::substitute(bound, dest, port, Place::Body, &body)
        .map(Bytes::from)
        .unwrap_or(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_is_refused_or_rewritten_by_destination_and_place() {
        let b = Broker {
            hosts: vec![broker::parse_host("api.example.com:443").unwrap()],
            places: [Place::Header].into(),
        };
        let value = "sk-test-abcdefghijklmnopqrstuvwxyz0123";
        let s = broker::sentinel(b"seed", "sbx", "K", value);
        let bound = [Bound {
            name: "K",
            sentinel: s.clone(),
            value: value.into(),
            broker: &b,
        }];
        let api = Dest::Name("api.example.com".into());
        let req = |uri: &str, header: &str| {
            hyper::Request::builder()
                .uri(uri)
                .header("x-api-key", header)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let mut ok = req("/v1/messages", &s);
        rewrite_head(&bound, &api, 443, &mut ok).unwrap();
        assert_eq!(ok.headers["x-api-key"], value);

        let mut in_query = req(&format!("/v1?key={s}"), "none");
        let e = rewrite_head(&bound, &api, 443, &mut in_query).unwrap_err();
        assert_eq!(e.place, Place::Query);

        let evil = Dest::Name("evil.example".into());
        let mut elsewhere = req("/", &s);
        assert_eq!(
            rewrite_head(&bound, &evil, 443, &mut elsewhere)
                .unwrap_err()
                .place,
            Place::Header
        );
        // Untouched on refusal: the value never enters a refused request.
        assert_eq!(elsewhere.headers["x-api-key"], s.as_str());

        let mut in_name = req("/", "none");
        let named = Dest::Name(format!("{}.evil.example", s.to_ascii_lowercase()));
        assert_eq!(
            rewrite_head(&bound, &named, 443, &mut in_name)
                .unwrap_err()
                .place,
            Place::Destination
        );

        let body = Bytes::from(format!("{{\"k\":\"{s}\"}}"));
        assert!(rewrite_body(&bound, &api, 443, body.clone()).is_err());
        let headers = hyper::HeaderMap::new();
        assert_eq!(searchable_body_len(&headers), Some(0));
    }
}
