//! The fortress's broker CA: the certificate authority whose leaf certificates the egress proxy
//! shows a sandbox for a brokered host, so it can read the request and put the secret in.
//!
//! It lives beside the state database, in `broker-ca/`: `ca.key` (0600, the directory 0700;
//! it never leaves this directory and is read by the agent only), `ca.crt`, and
//! `ca-bundle.crt`, the system roots plus `ca.crt`, which `apply` mounts read-only into each
//! sandbox with a brokered secret at [`BUNDLE_TARGET`]. The certificate is rebuilt from the
//! key and fixed parameters on every load (the issuer of a leaf is the key plus the subject),
//! so nothing needs to parse X.509 here. This module does file I/O; it never logs a key.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::egress::Dest;

/// Where the bundle is mounted inside a sandbox.
pub const BUNDLE_TARGET: &str = "/etc/clw-fortress/ca-bundle.crt";

/// The system roots the bundle starts from (Debian's `ca-certificates`).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The variables the common TLS stacks read a CA bundle from: OpenSSL (and Python's `ssl`),
/// requests, Node (added to its own roots), curl.
pub const BUNDLE_ENV: [&str; 4] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
];

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot write the broker CA in {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the broker CA key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the broker CA key {path} is open to others (mode {mode:o}); it must be 0600")]
    Insecure { path: PathBuf, mode: u32 },
    #[error("cannot build a certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

impl crate::error::Coded for CaError {
    fn code(&self) -> crate::error::ErrorCode {
        match self {
            CaError::Insecure { .. } => crate::error::ErrorCode::SecretsInsecure,
            _ => crate::error::ErrorCode::PermissionDenied,
        }
    }
}

/// The CA directory of the fortress whose state database is `state_path`.
pub fn dir_of(state_path: &Path) -> PathBuf {
    state_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("broker-ca")
}

/// The bundle's host path (the bind source), for the state database `state_path`.
pub fn bundle_of(state_path: &Path) -> PathBuf {
    dir_of(state_path).join("ca-bundle.crt")
}

/// A loaded CA: signs leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM), as in `ca.crt`.
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca { .. }")
    }
}

fn ca_params(fortress: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "clw-fortress");
    dn.push(
        DnType::CommonName,
        format!("clw-fortress broker CA ({fortress})"),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(p)
}

/// Writes `bytes` to `path` through a temporary file and a rename, with `mode`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let err = |source| CaError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

impl Ca {
    /// Loads the CA of `dir`, creating it (key, certificate, bundle) when there is none;
    /// refreshes the bundle from `roots` (a missing roots file gives a bundle of the CA
    /// alone). Two processes creating it at once: the first key written wins.
    pub fn ensure(dir: &Path, fortress: &str, roots: &Path) -> Result<Ca, CaError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CaError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(werr(dir))?;
        let key_path = dir.join("ca.key");
        if !key_path.exists() {
            let key = KeyPair::generate()?;
            let tmp = dir.join(format!("ca.key.tmp{}", std::process::id()));
            write_atomic(&tmp, key.serialize_pem().as_bytes(), 0o600)?;
            // A hard link never replaces: a key another process wrote first stays.
            let _ = std::fs::hard_link(&tmp, &key_path);
            let _ = std::fs::remove_file(&tmp);
        }
        let meta = std::fs::metadata(&key_path).map_err(|source| CaError::Read {
            path: key_path.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CaError::Insecure {
                path: key_path,
                mode,
            });
        }
        let pem = std::fs::read_to_string(&key_path).map_err(|source| CaError::Read {
            path: key_path.clone(),
            source,
        })?;
        let key = KeyPair::from_pem(&pem)?;
        let params = ca_params(fortress)?;
        // The certificate is kept once made (a signature differs on every signing, and the
        // bundle mounted into sandboxes should not change under them); one that is missing,
        // unreadable or not of this key is made again.
        let crt_path = dir.join("ca.crt");
        let kept = std::fs::read(&crt_path).ok().and_then(|pem| {
            let der = CertificateDer::from_pem_slice(&pem).ok()?;
            let spki = key.public_key_raw();
            // The subject public key is inside the certificate as it is.
            memchr::memmem::find(der.as_ref(), spki)?;
            Some((String::from_utf8(pem).ok()?, der))
        });
        let (cert_pem, cert_der) = match kept {
            Some(k) => k,
            None => {
                let cert = params.self_signed(&key)?;
                write_atomic(&crt_path, cert.pem().as_bytes(), 0o644)?;
                (cert.pem(), cert.der().clone())
            }
        };
        let issuer = Issuer::new(params, key);
        let mut bundle = std::fs::read(roots).unwrap_or_default();
        if !bundle.is_empty() && !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(cert_pem.as_bytes());
        let bundle_path = dir.join("ca-bundle.crt");
        if std::fs::read(&bundle_path).ok().as_deref() != Some(&bundle[..]) {
            write_atomic(&bundle_path, &bundle, 0o644)?;
        }
        Ok(Ca {
            issuer,
            cert_pem,
            cert_der,
        })
    }

    /// A leaf certificate for `host` (a name or an address), valid for a day, with a fresh
    /// key: the chain (leaf, CA) and the leaf's key.
    pub fn leaf(
        &self,
        host: &Dest,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.subject_alt_names = vec![match host {
            Dest::Name(n) => SanType::DnsName(n.clone().try_into()?),
            Dest::Ip(ip) => SanType::IpAddress(*ip),
        }];
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, host.to_string());
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::days(1);
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key_der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_created_once_with_a_private_key_and_a_bundle_of_roots_plus_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("broker-ca");
        let roots = tmp.path().join("roots.pem");
        std::fs::write(
            &roots,
            "-----BEGIN CERTIFICATE-----\nroots\n-----END CERTIFICATE-----",
        )
        .unwrap();
        let a = Ca::ensure(&dir, "f", &roots).unwrap();
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let bundle = std::fs::read_to_string(dir.join("ca-bundle.crt")).unwrap();
        assert!(bundle.starts_with("-----BEGIN CERTIFICATE-----\nroots\n"));
        assert!(bundle.ends_with(&a.cert_pem));
        let key = std::fs::read(dir.join("ca.key")).unwrap();
        let b = Ca::ensure(&dir, "f", &roots).unwrap();
        assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), key);
        // The same key and parameters: the same subject, so old leaves still chain.
        assert_eq!(a.cert_pem, b.cert_pem);
        let (chain, _) = b.leaf(&Dest::Name("api.example.com".into())).unwrap();
        assert_eq!(chain.len(), 2);
        std::fs::set_permissions(dir.join("ca.key"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(matches!(
            Ca::ensure(&dir, "f", &roots),
            Err(CaError::Insecure { .. })
        ));
    }
}
