//! The host-side content scan: search bytes streamed *out* of a sandbox (tar streams of its
//! filesystem, `/proc/*/environ`) for secret values with one multi-pattern matcher.
//!
//! Secret values never leave this module: a finding names the secret's key and the place it
//! was found. The scan is bounded in bytes and time; hitting a bound is reported, never
//! silently treated as "nothing found".

use std::io::Read;
use std::time::Instant;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::secrets::SecretMap;

/// Values shorter than this are not searched: a short value (`1`, `true`, a port) would match
/// all over any filesystem. Reports say which keys were skipped.
pub const MIN_SECRET_LEN: usize = 8;

/// The secret values to look for, by key.
pub struct Needles {
    ac: Option<AhoCorasick>,
    keys: Vec<String>,
    /// Keys not searched for (empty or shorter than [`MIN_SECRET_LEN`]).
    pub skipped: Vec<String>,
}

impl std::fmt::Debug for Needles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needles")
            .field("keys", &self.keys)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl Needles {
    pub fn new(secrets: &SecretMap, min_len: usize) -> Needles {
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut skipped = Vec::new();
        for (k, v) in secrets.values() {
            if v.len() < min_len.max(1) {
                skipped.push(k.to_string());
            } else {
                keys.push(k.to_string());
                values.push(v.as_bytes().to_vec());
            }
        }
        // Standard semantics: the only kind that supports stream search.
        let ac = (!values.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(&values)
                .expect("literal patterns always build")
        });
        Needles { ac, keys, skipped }
    }

    /// The keys searched for.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.ac.is_none()
    }

    /// Keys of the secrets found in `bytes`, sorted and deduplicated.
    pub fn find_in(&self, bytes: &[u8]) -> Vec<String> {
        let Some(ac) = &self.ac else {
            return Vec::new();
        };
        let mut found: Vec<String> = ac
            .find_overlapping_iter(bytes)
            .map(|m| self.keys[m.pattern().as_usize()].clone())
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Keys found in a stream; stops early when `budget` runs out.
    fn find_in_reader<R: Read>(
        &self,
        reader: R,
        budget: &mut Budget,
    ) -> std::io::Result<Vec<String>> {
        let Some(ac) = &self.ac else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        let limited = Limited {
            inner: reader,
            budget,
        };
        for m in ac.stream_find_iter(limited) {
            found.push(self.keys[m?.pattern().as_usize()].clone());
        }
        found.sort();
        found.dedup();
        Ok(found)
    }
}

/// The scan's bounds and what it used of them.
#[derive(Debug)]
pub struct Budget {
    pub max_bytes: u64,
    pub deadline: Instant,
    pub used: u64,
    /// Why the scan stopped early, when it did.
    pub exhausted: Option<String>,
}

impl Budget {
    pub fn new(max_bytes: u64, timeout: std::time::Duration) -> Budget {
        Budget {
            max_bytes,
            deadline: Instant::now() + timeout,
            used: 0,
            exhausted: None,
        }
    }

    fn take(&mut self, n: usize) -> usize {
        if self.exhausted.is_some() {
            return 0;
        }
        if Instant::now() >= self.deadline {
            self.exhausted = Some("the time bound".into());
            return 0;
        }
        let left = self.max_bytes.saturating_sub(self.used);
        if left == 0 {
            self.exhausted = Some(format!("the {} byte bound", self.max_bytes));
            return 0;
        }
        let n = (n as u64).min(left) as usize;
        self.used += n as u64;
        n
    }
}

/// A reader that ends (EOF) when the budget runs out.
struct Limited<'a, R> {
    inner: R,
    budget: &'a mut Budget,
}

impl<R: Read> Read for Limited<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.budget.take(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.inner.read(&mut buf[..n])?;
        // Give back what was granted but not read.
        self.budget.used -= (n - got) as u64;
        Ok(got)
    }
}

/// A secret found somewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub key: String,
    pub place: String,
}

/// What scanning one tar stream found.
#[derive(Debug, Default)]
pub struct TarScan {
    pub findings: Vec<Finding>,
    /// Entries whose file name is one of the names asked for (e.g. `secrets.env`).
    pub name_hits: Vec<String>,
    pub files: u64,
}

/// Scans every regular file of a tar stream. `prefix` is joined to relative entry names so
/// places read as paths inside the sandbox; `names` are file names reported when seen.
pub fn scan_tar<R: Read>(
    reader: R,
    prefix: &str,
    names: &[String],
    needles: &Needles,
    budget: &mut Budget,
) -> std::io::Result<TarScan> {
    let mut out = TarScan::default();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        if budget.exhausted.is_some() {
            break;
        }
        let entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let rel = raw.trim_start_matches("./").trim_start_matches('/');
        let place = format!("{}/{}", prefix.trim_end_matches('/'), rel)
            .trim_end_matches('/')
            .to_string();
        let place = if place.is_empty() { "/".into() } else { place };
        let base = rel.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        if names.iter().any(|n| n == base) {
            out.name_hits.push(place.clone());
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            continue;
        }
        out.files += 1;
        for key in needles.find_in_reader(entry, budget)? {
            out.findings.push(Finding {
                key,
                place: place.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secrets(text: &str) -> SecretMap {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.env");
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        crate::secrets::read(&path, nix::unistd::getuid().as_raw()).unwrap()
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn short_and_empty_values_are_skipped_and_named() {
        let n = Needles::new(&secrets("A=short\nB=\nC=long-enough-value\n"), 8);
        assert_eq!(n.keys(), ["C"]);
        assert_eq!(n.skipped, ["A", "B"]);
    }

    #[test]
    fn a_secret_in_any_file_is_found_by_key_and_path() {
        let n = Needles::new(&secrets("TOKEN=tok-0123456789\nOTHER=other-abcdefgh\n"), 8);
        let t = tar_of(&[
            ("agent-workspace/notes.txt", b"hello tok-0123456789 bye"),
            ("etc/passwd", b"root:x:0:0"),
            ("work/secrets.env", b"nothing"),
        ]);
        let mut b = Budget::new(1 << 20, Duration::from_secs(10));
        let s = scan_tar(&t[..], "/", &["secrets.env".into()], &n, &mut b).unwrap();
        assert_eq!(
            s.findings,
            [Finding {
                key: "TOKEN".into(),
                place: "/agent-workspace/notes.txt".into()
            }]
        );
        assert_eq!(s.name_hits, ["/work/secrets.env"]);
        assert_eq!(s.files, 3);
        assert!(b.exhausted.is_none());
    }

    #[test]
    fn the_byte_bound_stops_the_scan_and_says_so() {
        let n = Needles::new(&secrets("TOKEN=tok-0123456789\n"), 8);
        let big = vec![b'x'; 4096];
        let t = tar_of(&[("a", &big), ("b", b"tok-0123456789")]);
        let mut b = Budget::new(1000, Duration::from_secs(10));
        let s = scan_tar(&t[..], "/", &[], &n, &mut b).unwrap();
        assert!(s.findings.is_empty());
        assert_eq!(b.exhausted.as_deref(), Some("the 1000 byte bound"));
    }

    #[test]
    fn a_secret_split_across_read_chunks_is_still_found() {
        let n = Needles::new(&secrets("TOKEN=tok-0123456789\n"), 8);
        let mut data = vec![b'x'; 65530];
        data.extend_from_slice(b"tok-0123456789");
        let t = tar_of(&[("tmp/big", &data)]);
        let mut b = Budget::new(1 << 20, Duration::from_secs(10));
        let s = scan_tar(&t[..], "/", &[], &n, &mut b).unwrap();
        assert_eq!(s.findings.len(), 1);
        assert_eq!(s.findings[0].place, "/tmp/big");
    }
}
