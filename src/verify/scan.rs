//! The host-side content scan: search bytes streamed *out* of a sandbox (tar streams of its
//! filesystem, `/proc/*/environ`) for secret values with one multi-pattern matcher.
//!
//! The matcher holds every secret value raw and in the forms an exfiltrating tool would give
//! it ([`Encoding`]): base64 (standard and URL-safe, at each of the three alignments a value
//! can have inside a longer base64 text), hex, percent-encoding, UTF-16. Line breaks (`\r`,
//! `\n`) are removed from the patterns and from the searched bytes alike, so a value wrapped
//! over lines (PEM-style base64, a hand-split token) is found in the same pass. Compressed
//! and archived content is opened on the fly (gzip, zlib, zip members, tar members), up to
//! [`MAX_DEPTH`] levels and within the budget's decompressed-size bound; file names and link
//! targets are searched like content.
//!
//! Cost: one matcher pass over every byte read out of the sandbox, plus one over every
//! decompressed byte. The line-break removal happens in the copy that carries each chunk's
//! tail into the next (the copy is needed anyway for matches across chunks); finding the
//! breaks is a `memchr2` scan, an order of magnitude faster than the matcher. About ten forms
//! per secret make the automaton larger, not the search slower: it stays one DFA transition
//! per byte (figures in docs/BENCHMARKS.md).
//!
//! Secret values never leave this module: a finding names the secret's key, the encoding and
//! the place it was found, and a place whose path itself holds a secret is shown with that
//! name withheld. The scan is bounded in bytes and time; hitting a bound, or content that
//! could not be opened, is reported, never silently treated as "nothing found".

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read};
use std::time::Instant;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use base64::Engine as _;

use crate::secrets::SecretMap;

/// Values shorter than this are not searched: a short value (`1`, `true`, a port) would match
/// all over any filesystem. Reports say which keys were skipped.
pub const MIN_SECRET_LEN: usize = 8;

/// How many archive or compression layers are opened inside a file (a `.tar.gz` is two). A
/// container nested deeper is searched raw only and makes the scan incomplete.
pub const MAX_DEPTH: u32 = 3;

/// A zip is read from its central directory, which needs the whole file: zips up to this size
/// are held in memory. Larger ones are walked member by member from their local headers,
/// which cannot skip a member whose size is only given after its data.
const ZIP_IN_MEMORY_MAX: usize = 64 << 20;

/// Bytes handed to the matcher at a time.
const CHUNK: usize = 256 << 10;

/// A form in which a secret value can appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Encoding {
    Raw,
    Base64,
    Base64Url,
    Hex,
    /// `%XX` escapes: every byte, or only those outside RFC 3986's unreserved set.
    Percent,
    Utf16Le,
    Utf16Be,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64url",
            Encoding::Hex => "hex",
            Encoding::Percent => "url-encoded",
            Encoding::Utf16Le => "UTF-16LE",
            Encoding::Utf16Be => "UTF-16BE",
        }
    }
}

/// The part of `value`'s base64 text that does not depend on its neighbours when the value
/// starts `align` bytes into a 3-byte group of a longer base64 stream: the characters whose
/// 6 bits all come from the value.
fn base64_stable(value: &[u8], align: usize, engine: &base64::engine::GeneralPurpose) -> Vec<u8> {
    let mut framed = vec![0u8; align];
    framed.extend_from_slice(value);
    framed.extend_from_slice(&[0, 0]);
    let text = engine.encode(&framed);
    let first = (8 * align).div_ceil(6);
    let end = 8 * (align + value.len()) / 6;
    text.as_bytes()[first..end].to_vec()
}

/// RFC 3986 unreserved characters, which `urlencode`-style encoders leave as they are.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn percent(value: &[u8], keep: impl Fn(u8) -> bool, space_plus: bool, upper: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if space_plus && b == b' ' {
            out.push(b'+');
        } else if keep(b) {
            out.push(b);
        } else if upper {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    out
}

/// Every form of `value` the matcher looks for, line breaks removed, deduplicated (the first
/// encoding of a repeated form names it: a value with nothing to escape is "raw", not
/// "url-encoded").
fn forms(value: &str) -> Vec<(Encoding, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let v = value.as_bytes();
    let mut out = vec![(Encoding::Raw, v.to_vec())];
    for align in 0..3 {
        out.push((Encoding::Base64, base64_stable(v, align, &STANDARD)));
    }
    for align in 0..3 {
        out.push((Encoding::Base64Url, base64_stable(v, align, &URL_SAFE)));
    }
    out.push((Encoding::Hex, hex::encode(v).into_bytes()));
    out.push((Encoding::Hex, hex::encode_upper(v).into_bytes()));
    for upper in [true, false] {
        // Every byte escaped (what a tool that escapes "everything" sends).
        out.push((Encoding::Percent, percent(v, |_| false, false, upper)));
        // Python's quote / curl --data-urlencode / PHP rawurlencode.
        out.push((Encoding::Percent, percent(v, unreserved, false, upper)));
        // HTML forms and Python's quote_plus: spaces as '+'.
        out.push((Encoding::Percent, percent(v, unreserved, true, upper)));
        // JavaScript's encodeURIComponent also keeps !'()*.
        let js = |b: u8| unreserved(b) || matches!(b, b'!' | b'\'' | b'(' | b')' | b'*');
        out.push((Encoding::Percent, percent(v, js, false, upper)));
    }
    let utf16: Vec<u16> = value.encode_utf16().collect();
    out.push((
        Encoding::Utf16Le,
        utf16.iter().flat_map(|u| u.to_le_bytes()).collect(),
    ));
    out.push((
        Encoding::Utf16Be,
        utf16.iter().flat_map(|u| u.to_be_bytes()).collect(),
    ));
    let mut seen = BTreeSet::new();
    out.into_iter()
        .map(|(e, f)| (e, strip_breaks(&f)))
        .filter(|(_, f)| !f.is_empty() && seen.insert(f.clone()))
        .collect()
}

fn strip_breaks(b: &[u8]) -> Vec<u8> {
    b.iter()
        .copied()
        .filter(|c| *c != b'\r' && *c != b'\n')
        .collect()
}

/// What one match stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Variant {
    key: usize,
    encoding: Encoding,
}

/// The secret values to look for, by key, in every form.
pub struct Needles {
    ac: Option<AhoCorasick>,
    keys: Vec<String>,
    /// For each pattern of the matcher, the secrets and encodings it stands for (two keys may
    /// share a value).
    variants: Vec<Vec<Variant>>,
    /// The longest pattern minus one: the bytes carried from one chunk to the next so a match
    /// across a chunk boundary is found.
    carry: usize,
    /// Keys not searched for (empty or shorter than [`MIN_SECRET_LEN`]).
    pub skipped: Vec<String>,
}

impl std::fmt::Debug for Needles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needles")
            .field("keys", &self.keys)
            .field("patterns", &self.variants.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// One secret seen in a byte string: which key, in which form, and whether the value was
/// split by line breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub key: usize,
    pub encoding: Encoding,
    pub split: bool,
}

impl Needles {
    pub fn new(secrets: &SecretMap, min_len: usize) -> Needles {
        Needles::from_pairs(secrets.values(), min_len)
    }

    /// From `(key, value)` pairs (benchmarks and tests; the product reads a [`SecretMap`]).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        min_len: usize,
    ) -> Needles {
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut variants: Vec<Vec<Variant>> = Vec::new();
        let mut index: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        for (k, v) in pairs {
            if v.len() < min_len.max(1) {
                skipped.push(k.to_string());
                continue;
            }
            let key = keys.len();
            keys.push(k.to_string());
            for (encoding, form) in forms(v) {
                let id = *index.entry(form.clone()).or_insert_with(|| {
                    patterns.push(form);
                    variants.push(Vec::new());
                    patterns.len() - 1
                });
                variants[id].push(Variant { key, encoding });
            }
        }
        let carry = patterns.iter().map(Vec::len).max().unwrap_or(1) - 1;
        // Standard semantics: overlapping search reports every pattern (a value that is part
        // of another is still named). A full DFA: the search is one table lookup per byte. No
        // prefilter: it is re-entered at every return to the start state, and the first bytes
        // of ~10 forms per secret cover much of the alphabet, so with it the scan measured
        // about 5x slower (benches/content_scan.rs).
        let ac = (!patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::DFA))
                .prefilter(false)
                .build(&patterns)
                .expect("literal patterns always build")
        });
        Needles {
            ac,
            keys,
            variants,
            carry,
            skipped,
        }
    }

    /// The keys searched for.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.ac.is_none()
    }

    /// How many distinct patterns the matcher holds (every form of every value).
    pub fn pattern_count(&self) -> usize {
        self.variants.len()
    }

    /// Every secret in `bytes`, in any form.
    pub fn hits_in(&self, bytes: &[u8]) -> BTreeSet<Hit> {
        let mut m = Matcher::new(self);
        m.feed(bytes);
        m.hits()
    }

    /// Where the first value in any form starts in `bytes` (line breaks not removed).
    fn first_start(&self, bytes: &[u8]) -> Option<usize> {
        let ac = self.ac.as_ref()?;
        ac.find_overlapping_iter(bytes).map(|m| m.start()).min()
    }

    /// Keys of the secrets found in `bytes` in any form, sorted and deduplicated.
    pub fn find_in(&self, bytes: &[u8]) -> Vec<String> {
        let mut keys: Vec<String> = self
            .hits_in(bytes)
            .into_iter()
            .map(|h| self.keys[h.key].clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The matcher's state over one stream: fed chunk by chunk, it carries the tail of the last
/// chunk so matches across chunk boundaries are found.
struct Matcher<'n> {
    needles: &'n Needles,
    /// The carried tail, then the current chunk, with line breaks removed.
    buf: Vec<u8>,
    /// Offsets in `buf` where line breaks were removed.
    breaks: Vec<usize>,
    found: BTreeSet<(u32, bool)>,
}

impl<'n> Matcher<'n> {
    fn new(needles: &'n Needles) -> Matcher<'n> {
        Matcher {
            needles,
            buf: Vec::new(),
            breaks: Vec::new(),
            found: BTreeSet::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let Some(ac) = &self.needles.ac else {
            return;
        };
        // Removing the line breaks is part of the copy behind the carried tail, so the one
        // matcher pass sees raw and wrapped values alike.
        let mut rest = chunk;
        while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
            self.buf.extend_from_slice(&rest[..i]);
            if self.breaks.last() != Some(&self.buf.len()) {
                self.breaks.push(self.buf.len());
            }
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
        for m in ac.find_overlapping_iter(&self.buf[..]) {
            let first_break = self.breaks.partition_point(|&b| b <= m.start());
            let split = self.breaks.get(first_break).is_some_and(|&b| b < m.end());
            self.found.insert((m.pattern().as_u32(), split));
        }
        let cut = self.buf.len().saturating_sub(self.needles.carry);
        self.buf.drain(..cut);
        self.breaks.retain(|&b| b > cut);
        for b in &mut self.breaks {
            *b -= cut;
        }
    }

    fn hits(&self) -> BTreeSet<Hit> {
        let mut out = BTreeSet::new();
        for &(pattern, split) in &self.found {
            for v in &self.needles.variants[pattern as usize] {
                out.insert(Hit {
                    key: v.key,
                    encoding: v.encoding,
                    split,
                });
            }
        }
        out
    }
}

/// The scan's bounds and what it used of them.
#[derive(Debug)]
pub struct Budget {
    /// Bytes read out of the sandbox.
    pub max_bytes: u64,
    pub deadline: Instant,
    pub used: u64,
    /// Bytes produced by decompressing content (gzip, zlib, deflated zip members); the
    /// bound that stops a decompression bomb.
    pub max_expanded: u64,
    pub expanded: u64,
    /// Why the scan stopped early, when it did.
    pub exhausted: Option<String>,
}

impl Budget {
    /// `max_bytes` bounds the bytes read out of the sandbox, and as much again the bytes
    /// decompressed from them.
    pub fn new(max_bytes: u64, timeout: std::time::Duration) -> Budget {
        Budget {
            max_bytes,
            deadline: Instant::now() + timeout,
            used: 0,
            max_expanded: max_bytes,
            expanded: 0,
            exhausted: None,
        }
    }

    pub fn with_max_expanded(mut self, max_expanded: u64) -> Budget {
        self.max_expanded = max_expanded;
        self
    }

    fn out_of_time(&mut self) -> bool {
        if self.exhausted.is_none() && Instant::now() >= self.deadline {
            self.exhausted = Some("the time bound".into());
        }
        self.exhausted.is_some()
    }

    fn take(&mut self, n: usize) -> usize {
        if self.out_of_time() {
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

type Meter<'b> = RefCell<&'b mut Budget>;

/// A reader of sandbox bytes that ends (EOF) when the budget runs out.
struct Limited<'m, 'b, R> {
    inner: R,
    meter: &'m Meter<'b>,
}

impl<R: Read> Read for Limited<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.meter.borrow_mut().take(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.inner.read(&mut buf[..n]);
        let mut b = self.meter.borrow_mut();
        // Give back what was granted but not read.
        b.used -= (n - *got.as_ref().unwrap_or(&0)) as u64;
        got
    }
}

/// Everything read from a stream passes the matcher on its way; decompressed streams are
/// charged to the decompressed-size bound. Ends (EOF) when a bound is hit.
struct Tap<'a, 'n, 'm, 'b> {
    inner: &'a mut dyn Read,
    matcher: &'a mut Matcher<'n>,
    meter: &'m Meter<'b>,
    /// Charge what is read to the decompressed-size bound.
    expanded: bool,
    /// The decompressed-size bound ended this stream.
    capped: bool,
    read: u64,
}

impl Read for Tap<'_, '_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let allowed = {
            let mut b = self.meter.borrow_mut();
            if b.out_of_time() {
                0
            } else if self.expanded {
                let left = b.max_expanded.saturating_sub(b.expanded);
                if left == 0 {
                    self.capped = true;
                }
                (left.min(buf.len() as u64)) as usize
            } else {
                buf.len()
            }
        };
        if allowed == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..allowed])?;
        if self.expanded {
            self.meter.borrow_mut().expanded += n as u64;
        }
        self.read += n as u64;
        self.matcher.feed(&buf[..n]);
        Ok(n)
    }
}

/// A secret found somewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub key: String,
    /// Where and how, e.g. `/tmp/a.txt`, `base64 in /workspace/x.b64`,
    /// `inside gzip /tmp/a.gz`, `hex in notes.txt inside tar inside gzip /tmp/b.tgz`.
    pub place: String,
}

/// What scanning one tar stream found.
#[derive(Debug, Default)]
pub struct TarScan {
    pub findings: Vec<Finding>,
    /// Entries whose file name is one of the names asked for (e.g. `secrets.env`).
    pub name_hits: Vec<String>,
    pub files: u64,
    /// Content that could not be searched completely (an archive nested too deep, the
    /// decompressed-size bound, a member that could not be decoded): the scan is then
    /// inconclusive unless something was found.
    pub incomplete: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Gzip,
    Zlib,
    Zip,
    Tar,
}

impl Container {
    fn as_str(self) -> &'static str {
        match self {
            Container::Gzip => "gzip",
            Container::Zlib => "zlib",
            Container::Zip => "zip",
            Container::Tar => "tar",
        }
    }
}

/// A POSIX or GNU tar header: the `ustar` magic and a matching header checksum.
fn is_tar_header(h: &[u8]) -> bool {
    if h.len() < 512 || &h[257..262] != b"ustar" {
        return false;
    }
    let stored = std::str::from_utf8(&h[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = h[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    stored == Some(sum)
}

fn sniff(head: &[u8]) -> Option<Container> {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(Container::Gzip)
    } else if head.len() >= 2 && head[0] == 0x78 && matches!(head[1], 0x01 | 0x5e | 0x9c | 0xda) {
        // A deflate stream with a 32 KiB window and no preset dictionary: the headers zlib
        // writes. Text can start with `x^`; a stream that yields nothing is then not zlib.
        Some(Container::Zlib)
    } else if head.starts_with(b"PK\x03\x04") {
        Some(Container::Zip)
    } else if is_tar_header(head) {
        Some(Container::Tar)
    } else {
        None
    }
}

/// A path as shown in a report: one line (control characters escaped), and with the name
/// that holds a secret withheld, from the first component that does.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

const WITHHELD: &str = "[name withheld: holds a secret]";

/// Walks content with the matcher: the state of one scan.
struct Walk<'n, 'm, 'b> {
    needles: &'n Needles,
    meter: &'m Meter<'b>,
    names: &'n [String],
    out: TarScan,
    /// Places whose decompression the decompressed-size bound cut short.
    capped: Vec<String>,
    /// Per stream being searched (innermost last): the secrets and encodings found in what
    /// it contains. A stream does not report again what a member or its decompressed form
    /// already did (the hex in `notes.txt` inside a tar is not also "hex in the tar").
    inside: Vec<BTreeSet<(usize, Encoding)>>,
    /// Read buffers, reused from file to file.
    spare: Vec<Vec<u8>>,
}

impl Walk<'_, '_, '_> {
    /// The display form of `path` and the secrets its bytes hold.
    fn path(&self, path: &[u8]) -> (String, BTreeSet<Hit>) {
        let hits = self.needles.hits_in(path);
        if hits.is_empty() {
            return (shown(path), hits);
        }
        // Shown up to the component where the first value starts (a value may itself hold
        // a `/`). A value seen only across a line break in the name withholds it all.
        let start = self.needles.first_start(path);
        let clean = start.and_then(|s| path[..s].iter().rposition(|b| *b == b'/'));
        let shown = match clean {
            Some(0) => format!("/{WITHHELD}"),
            Some(c) => format!("{}/{WITHHELD}", shown(&path[..c])),
            None => WITHHELD.to_string(),
        };
        (shown, hits)
    }

    /// Records findings at `place`, and tells the enclosing stream they were found inside
    /// it.
    fn record(&mut self, hits: &BTreeSet<Hit>, place: &str) {
        for h in hits {
            let how = match (h.encoding, h.split) {
                (Encoding::Raw, false) => String::new(),
                (Encoding::Raw, true) => "split over lines".into(),
                (e, false) => e.as_str().to_string(),
                (e, true) => format!("{} split over lines", e.as_str()),
            };
            let place = match (how.is_empty(), place.starts_with("inside ")) {
                (true, _) => place.to_string(),
                (false, true) => format!("{how} {place}"),
                (false, false) => format!("{how} in {place}"),
            };
            self.out.findings.push(Finding {
                key: self.needles.keys[h.key].clone(),
                place,
            });
            if let Some(found) = self.inside.last_mut() {
                found.insert((h.key, h.encoding));
            }
        }
    }

    /// Searches an entry's name and link target; returns the place to report its content
    /// under. `within` is the container's place (`None` at the top level).
    fn entry(&mut self, name: &[u8], link: Option<&[u8]>, within: Option<(&str, &str)>) -> String {
        let (path, hits) = self.path(name);
        let place = match within {
            None => path.clone(),
            Some((kind, outer)) => format!("{path} inside {kind} {outer}"),
        };
        self.record(&hits, &format!("the file name {place}"));
        if let Some(link) = link {
            let hits = self.needles.hits_in(link);
            self.record(&hits, &format!("the link target of {place}"));
        }
        let base = name
            .strip_suffix(b"/")
            .unwrap_or(name)
            .rsplit(|b| *b == b'/')
            .next()
            .unwrap_or_default();
        if self.names.iter().any(|n| n.as_bytes() == base) {
            self.out.name_hits.push(place.clone());
        }
        place
    }

    fn incomplete(&mut self, why: String) {
        if self.meter.borrow().exhausted.is_none() {
            self.out.incomplete.push(why);
        }
    }

    /// Searches one stream, opening what it contains. Errors are the source's own (the
    /// caller decides what they mean); a container that cannot be decoded is recorded as
    /// incomplete and its bytes are still searched raw.
    fn content(
        &mut self,
        src: &mut dyn Read,
        place: &str,
        depth: u32,
        expanded: bool,
    ) -> (u64, io::Result<()>) {
        let mut matcher = Matcher::new(self.needles);
        let mut tap = Tap {
            inner: src,
            matcher: &mut matcher,
            meter: self.meter,
            expanded,
            capped: false,
            read: 0,
        };
        self.inside.push(BTreeSet::new());
        let result = self.content_of(&mut tap, place, depth);
        let (read, capped) = (tap.read, tap.capped);
        let within = self.inside.pop().unwrap_or_default();
        if capped {
            self.capped.push(place.to_string());
        }
        let mut hits = matcher.hits();
        hits.retain(|h| !within.contains(&(h.key, h.encoding)));
        self.record(&hits, place);
        if let Some(outer) = self.inside.last_mut() {
            outer.extend(within);
        }
        (read, result)
    }

    /// Reads `r` to its end (each read passes the matcher of the stream it comes from).
    fn drain(&mut self, r: &mut dyn Read) -> io::Result<()> {
        let mut buf = self.spare.pop().unwrap_or_else(|| vec![0; CHUNK]);
        let result = loop {
            match r.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.spare.push(buf);
        result
    }

    fn content_of(
        &mut self,
        tap: &mut Tap<'_, '_, '_, '_>,
        place: &str,
        depth: u32,
    ) -> io::Result<()> {
        let mut head = Vec::with_capacity(512);
        Read::take(&mut *tap, 512).read_to_end(&mut head)?;
        let kind = sniff(&head);
        let mut src = io::Cursor::new(head).chain(tap);
        match kind {
            None => {}
            Some(k) if depth >= MAX_DEPTH => self.incomplete(format!(
                "{} nested deeper than {MAX_DEPTH} archive/compression layers, searched raw only: {place}",
                k.as_str()
            )),
            Some(k @ (Container::Gzip | Container::Zlib)) => {
                let mut br = BufReader::with_capacity(CHUNK, &mut src);
                let inner = format!("inside {} {place}", k.as_str());
                loop {
                    let (made, r) = match k {
                        Container::Gzip => {
                            let mut d = flate2::bufread::GzDecoder::new(&mut br);
                            self.content(&mut d, &inner, depth + 1, true)
                        }
                        _ => {
                            let mut d = flate2::bufread::ZlibDecoder::new(&mut br);
                            self.content(&mut d, &inner, depth + 1, true)
                        }
                    };
                    if let Err(e) = r {
                        // A stream that yields nothing was not compressed after all.
                        if made > 0 {
                            self.incomplete(format!("{inner} could not be decoded to its end ({e})"));
                        }
                        break;
                    }
                    // Concatenated gzip members (`cat a.gz b.gz`, bgzip) are one file.
                    let more = k == Container::Gzip
                        && br.fill_buf().is_ok_and(|b| b.starts_with(&[0x1f, 0x8b, 0x08]));
                    if !more {
                        break;
                    }
                }
                self.drain(&mut br)?;
            }
            Some(Container::Tar) => {
                let mut archive = tar::Archive::new(&mut src);
                if let Err(e) = self.tar_members(&mut archive, place, depth) {
                    self.incomplete(format!("tar {place} could not be read to its end ({e})"));
                }
            }
            Some(Container::Zip) => self.zip(&mut src, place, depth)?,
        }
        self.drain(&mut src)
    }

    fn tar_members<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        place: &str,
        depth: u32,
    ) -> io::Result<()> {
        for entry in archive.entries()? {
            let mut entry = entry?;
            let name = entry.path_bytes().into_owned();
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let member = self.entry(&name, link.as_deref(), Some(("tar", place)));
            let kind = entry.header().entry_type();
            if kind.is_file() || kind == tar::EntryType::Continuous {
                self.member(&mut entry, &member, depth + 1, false);
            }
        }
        Ok(())
    }

    /// Searches an archive member; a member that cannot be read is recorded as incomplete.
    fn member(&mut self, src: &mut dyn Read, place: &str, depth: u32, expanded: bool) {
        if let (_, Err(e)) = self.content(src, place, depth, expanded) {
            self.incomplete(format!("{place} could not be read to its end ({e})"));
        }
    }

    fn zip(&mut self, src: &mut dyn Read, place: &str, depth: u32) -> io::Result<()> {
        let mut held = Vec::new();
        src.take(ZIP_IN_MEMORY_MAX as u64 + 1)
            .read_to_end(&mut held)?;
        if held.len() <= ZIP_IN_MEMORY_MAX {
            let mut z = match zip::ZipArchive::new(io::Cursor::new(&held[..])) {
                Ok(z) => z,
                Err(e) => {
                    self.incomplete(format!("zip {place} could not be opened ({e})"));
                    return Ok(());
                }
            };
            for i in 0..z.len() {
                let name = match z.by_index_raw(i) {
                    Ok(f) => f.name_raw().to_vec(),
                    Err(e) => {
                        self.incomplete(format!(
                            "member {i} of zip {place} could not be read ({e})"
                        ));
                        continue;
                    }
                };
                let member = self.entry(&name, None, Some(("zip", place)));
                match z.by_index(i) {
                    Ok(mut f) if f.is_file() => {
                        let deflated = f.compression() != zip::CompressionMethod::Stored;
                        self.member(&mut f, &member, depth + 1, deflated);
                    }
                    Ok(_) => {}
                    Err(e) => self.incomplete(format!("{member} could not be decoded ({e})")),
                }
            }
            return Ok(());
        }
        // Too large to hold: member by member from the local headers.
        let mut rest = io::Cursor::new(held).chain(src);
        loop {
            match zip::read::read_zipfile_from_stream(&mut rest) {
                Ok(Some(mut f)) => {
                    let name = f.name_raw().to_vec();
                    let member = self.entry(&name, None, Some(("zip", place)));
                    if f.is_file() {
                        let deflated = f.compression() != zip::CompressionMethod::Stored;
                        self.member(&mut f, &member, depth + 1, deflated);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.incomplete(format!(
                        "zip {place} (over {} MiB) could not be read member by member ({e})",
                        ZIP_IN_MEMORY_MAX >> 20
                    ));
                    break;
                }
            }
        }
        self.drain(&mut rest)
    }
}

/// Scans every entry of a tar stream: names and link targets of all, content of regular
/// files (opening archives and compressed streams inside). `prefix` is joined to relative
/// entry names so places read as paths inside the sandbox; `names` are file names reported
/// when seen.
pub fn scan_tar<R: Read>(
    reader: R,
    prefix: &str,
    names: &[String],
    needles: &Needles,
    budget: &mut Budget,
) -> io::Result<TarScan> {
    let meter = RefCell::new(budget);
    let mut walk = Walk {
        needles,
        meter: &meter,
        names,
        out: TarScan::default(),
        capped: Vec::new(),
        inside: Vec::new(),
        spare: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        if meter.borrow().exhausted.is_some() {
            break;
        }
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let mut rel = &raw[..];
        while let Some(r) = rel.strip_prefix(b"./").or_else(|| rel.strip_prefix(b"/")) {
            rel = r;
        }
        let mut full = prefix.trim_end_matches('/').as_bytes().to_vec();
        full.push(b'/');
        full.extend_from_slice(rel);
        while full.len() > 1 && full.ends_with(b"/") {
            full.pop();
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let place = walk.entry(&full, link.as_deref(), None);
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            continue;
        }
        walk.out.files += 1;
        let mut limited = Limited {
            inner: &mut entry,
            meter: &meter,
        };
        // Errors here are the sandbox stream's own: the scan cannot go on.
        walk.content(&mut limited, &place, 0, false).1?;
    }
    Ok(walk.finish())
}

impl Walk<'_, '_, '_> {
    /// The scan's result, naming the streams the decompressed-size bound cut short.
    fn finish(mut self) -> TarScan {
        if let Some(first) = self.capped.first() {
            let more = self.capped.len() - 1;
            let max = self.meter.borrow().max_expanded;
            let also = if more > 0 {
                format!(" and {more} more stream(s)")
            } else {
                String::new()
            };
            let why = format!("the decompressed-size bound ({max} bytes) cut short {first}{also}");
            self.incomplete(why);
        }
        let mut out = self.out;
        out.findings.sort();
        out.findings.dedup();
        out.incomplete.dedup();
        out
    }
}

/// Scans one stream that is not a tar of files (a deleted file's content streamed out of a
/// process's fd), reporting what it holds at `place`, opening archives and compressed
/// content inside like a file's.
pub fn scan_stream<R: Read>(
    reader: R,
    place: &str,
    needles: &Needles,
    budget: &mut Budget,
) -> io::Result<TarScan> {
    let meter = RefCell::new(budget);
    let mut walk = Walk {
        needles,
        meter: &meter,
        names: &[],
        out: TarScan::default(),
        capped: Vec::new(),
        inside: Vec::new(),
        spare: Vec::new(),
    };
    walk.out.files += 1;
    let mut limited = Limited {
        inner: reader,
        meter: &meter,
    };
    walk.content(&mut limited, place, 0, false).1?;
    Ok(walk.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
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

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zip_of(files: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, data) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const TOKEN: &str = "tok-0123456789+/?&= é>>";

    fn needles() -> Needles {
        Needles::from_pairs([("TOKEN", TOKEN), ("OTHER", "other-abcdefgh")], 8)
    }

    fn scan(t: &[u8]) -> (TarScan, Budget) {
        let mut b = Budget::new(1 << 30, Duration::from_secs(30));
        let s = scan_tar(t, "/", &["secrets.env".into()], &needles(), &mut b).unwrap();
        (s, b)
    }

    fn places(s: &TarScan) -> Vec<String> {
        s.findings
            .iter()
            .map(|f| format!("{}: {}", f.key, f.place))
            .collect()
    }

    #[test]
    fn a_stream_outside_any_tar_is_searched_and_opened_like_a_file() {
        let mut raw = b"header ".to_vec();
        raw.extend_from_slice(TOKEN.as_bytes());
        let place = "a deleted file held open by pid 42";
        for (bytes, want) in [
            (raw.clone(), format!("TOKEN: {place}")),
            (gzip(&raw), format!("TOKEN: inside gzip {place}")),
        ] {
            let mut b = Budget::new(1 << 20, Duration::from_secs(10));
            let s = scan_stream(&bytes[..], place, &needles(), &mut b).unwrap();
            assert_eq!(places(&s), [want]);
            assert_eq!(s.files, 1);
        }
        // Bounded like everything read out of a sandbox.
        let mut b = Budget::new(4, Duration::from_secs(10));
        let s = scan_stream(&raw[..], place, &needles(), &mut b).unwrap();
        assert!(s.findings.is_empty());
        assert!(b.exhausted.is_some());
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
        assert!(s.incomplete.is_empty());
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
        for at in [CHUNK - 7, CHUNK - 1, CHUNK, 65530] {
            let mut data = vec![b'x'; at];
            data.extend_from_slice(b"tok-0123456789");
            let t = tar_of(&[("tmp/big", &data)]);
            let mut b = Budget::new(1 << 22, Duration::from_secs(10));
            let s = scan_tar(&t[..], "/", &[], &n, &mut b).unwrap();
            assert_eq!(places(&s), ["TOKEN: /tmp/big"], "value at {at}");
        }
    }

    /// Wraps `encoded` in unrelated text of 0, 1 and 2 leading bytes, so every base64
    /// alignment of a value inside a longer text is exercised by the callers that need it.
    fn encodings() -> Vec<(&'static str, Vec<u8>)> {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
        let v = TOKEN.as_bytes();
        let mut wrapped = STANDARD.encode(v).into_bytes();
        // 8-character lines, CRLF, the way MIME wraps base64 (shorter lines for the test).
        wrapped = wrapped
            .chunks(8)
            .flat_map(|c| c.iter().copied().chain(*b"\r\n"))
            .collect();
        let all_lower: String = v.iter().map(|b| format!("%{b:02x}")).collect();
        let utf16le: Vec<u8> = TOKEN.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let utf16be: Vec<u8> = TOKEN.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let half = 9;
        let mut split = v[..half].to_vec();
        split.extend_from_slice(b"\n");
        split.extend_from_slice(&v[half..]);
        vec![
            ("TOKEN: /f", v.to_vec()),
            ("TOKEN: base64 in /f", STANDARD.encode(v).into_bytes()),
            (
                "TOKEN: base64 in /f",
                STANDARD_NO_PAD.encode(v).into_bytes(),
            ),
            ("TOKEN: base64url in /f", URL_SAFE.encode(v).into_bytes()),
            ("TOKEN: base64 split over lines in /f", wrapped),
            ("TOKEN: hex in /f", hex::encode(v).into_bytes()),
            ("TOKEN: hex in /f", hex::encode_upper(v).into_bytes()),
            ("TOKEN: url-encoded in /f", all_lower.into_bytes()),
            (
                "TOKEN: url-encoded in /f",
                b"tok-0123456789%2B%2F%3F%26%3D%20%C3%A9%3E%3E".to_vec(),
            ),
            (
                "TOKEN: url-encoded in /f",
                b"tok-0123456789%2b%2f%3f%26%3d+%c3%a9%3e%3e".to_vec(),
            ),
            ("TOKEN: UTF-16LE in /f", utf16le),
            ("TOKEN: UTF-16BE in /f", utf16be),
            ("TOKEN: split over lines in /f", split),
        ]
    }

    #[test]
    fn each_encoding_is_found_at_every_offset_and_named() {
        for (want, encoded) in encodings() {
            for lead in ["", "A", "AB", "ABC"] {
                let mut data = b"key: ".to_vec();
                data.extend_from_slice(lead.as_bytes());
                data.extend_from_slice(&encoded);
                data.extend_from_slice(b" end\n");
                let t = tar_of(&[("f", &data)]);
                let (s, _) = scan(&t);
                assert!(
                    places(&s).contains(&want.to_string()),
                    "{want} after {lead:?}: {:?}",
                    places(&s)
                );
                assert!(s.incomplete.is_empty());
            }
        }
    }

    #[test]
    fn base64_of_a_value_inside_longer_base64_text_is_found_at_all_three_alignments() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        for lead in 0..3 {
            for engine in [&STANDARD, &URL_SAFE] {
                let mut plain = b"{\"config\": \"".to_vec();
                plain.extend(std::iter::repeat_n(b'x', lead));
                plain.extend_from_slice(TOKEN.as_bytes());
                plain.extend_from_slice(b"\"}");
                let t = tar_of(&[("f", engine.encode(&plain).as_bytes())]);
                let (s, _) = scan(&t);
                assert_eq!(s.findings.len(), 1, "lead {lead}: {:?}", places(&s));
                assert_eq!(s.findings[0].key, "TOKEN");
            }
        }
    }

    #[test]
    fn unrelated_content_and_other_values_are_not_findings() {
        use base64::engine::general_purpose::STANDARD;
        let t = tar_of(&[
            ("a", b"tok-01234567 almost but not the value"),
            (
                "b",
                STANDARD
                    .encode(b"tok-0123456788+/?&= \xc3\xa9>>")
                    .as_bytes(),
            ),
            ("c", hex::encode("tok-0123456788").as_bytes()),
        ]);
        let (s, _) = scan(&t);
        assert!(s.findings.is_empty(), "{:?}", places(&s));
    }

    #[test]
    fn compressed_and_archived_copies_are_opened_and_named() {
        let inner_tar = tar_of(&[("notes/x.txt", hex::encode(TOKEN).as_bytes())]);
        let zip_deflated = zip_of(
            &[("docs/a.txt", TOKEN.as_bytes())],
            zip::CompressionMethod::Deflated,
        );
        let zip_stored = zip_of(
            &[("b.txt", TOKEN.as_bytes())],
            zip::CompressionMethod::Stored,
        );
        let zip_in_tgz = gzip(&tar_of(&[("inner.zip", &zip_deflated)]));
        let t = tar_of(&[
            ("tmp/a.gz", &gzip(TOKEN.as_bytes())),
            ("tmp/a.z", &zlib(TOKEN.as_bytes())),
            ("tmp/b.tar.gz", &gzip(&inner_tar)),
            ("tmp/plain.tar", &inner_tar),
            ("tmp/c.zip", &zip_deflated),
            ("tmp/d.zip", &zip_stored),
            ("tmp/e.tgz", &zip_in_tgz),
        ]);
        let (s, _) = scan(&t);
        assert_eq!(
            places(&s),
            [
                "TOKEN: b.txt inside zip /tmp/d.zip",
                "TOKEN: docs/a.txt inside zip /tmp/c.zip",
                "TOKEN: docs/a.txt inside zip inner.zip inside tar inside gzip /tmp/e.tgz",
                "TOKEN: hex in notes/x.txt inside tar /tmp/plain.tar",
                "TOKEN: hex in notes/x.txt inside tar inside gzip /tmp/b.tar.gz",
                "TOKEN: inside gzip /tmp/a.gz",
                "TOKEN: inside zlib /tmp/a.z",
            ],
        );
        assert!(s.incomplete.is_empty(), "{:?}", s.incomplete);
    }

    #[test]
    fn concatenated_gzip_members_are_all_opened() {
        let mut two = gzip(b"first member, nothing here");
        two.extend(gzip(TOKEN.as_bytes()));
        let (s, _) = scan(&tar_of(&[("log.gz", &two)]));
        assert_eq!(places(&s), ["TOKEN: inside gzip /log.gz"]);
    }

    #[test]
    fn archives_nested_deeper_than_the_bound_make_the_scan_incomplete() {
        // gzip(tar(gzip(tar(gzip(value))))): the innermost tar is the fourth layer, one more
        // than MAX_DEPTH opens, and holds the value compressed, so its raw bytes do not.
        let l0 = gzip(TOKEN.as_bytes());
        let l1 = tar_of(&[("v.gz", &l0)]);
        let l2 = gzip(&l1);
        let l3 = tar_of(&[("v.tgz", &l2)]);
        let l4 = gzip(&l3);
        let (s, _) = scan(&tar_of(&[("deep.tgz", &l4)]));
        assert!(s.findings.is_empty(), "{:?}", places(&s));
        assert_eq!(s.incomplete.len(), 1, "{:?}", s.incomplete);
        assert!(
            s.incomplete[0].contains("nested deeper than 3")
                && s.incomplete[0].contains("/deep.tgz"),
            "{:?}",
            s.incomplete
        );
        // Three layers are opened.
        let (s, _) = scan(&tar_of(&[("ok.tgz", &l2)]));
        assert_eq!(
            places(&s),
            ["TOKEN: inside gzip v.gz inside tar inside gzip /ok.tgz"]
        );
    }

    #[test]
    fn a_decompression_bomb_hits_the_bound_and_is_reported_not_passed() {
        // 64 MiB of zeros in about 64 KiB of gzip, the value after them.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        e.write_all(TOKEN.as_bytes()).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let t = tar_of(&[("tmp/bomb.gz", &bomb), ("tmp/after.txt", b"still scanned")]);
        let mut b = Budget::new(1 << 30, Duration::from_secs(30)).with_max_expanded(8 << 20);
        let s = scan_tar(&t[..], "/", &[], &needles(), &mut b).unwrap();
        assert!(s.findings.is_empty());
        assert_eq!(s.files, 2, "the files after the bomb are still scanned");
        assert_eq!(b.expanded, 8 << 20);
        assert!(b.exhausted.is_none());
        assert_eq!(
            s.incomplete,
            ["the decompressed-size bound (8388608 bytes) cut short inside gzip /tmp/bomb.gz"]
        );
    }

    #[test]
    fn a_corrupt_compressed_file_is_incomplete_but_text_that_looks_like_zlib_is_not() {
        // Incompressible bytes, so the first half of the stream decodes to something.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut broken = gzip(&noise);
        let mid = broken.len() / 2;
        broken.truncate(mid);
        let (s, _) = scan(&tar_of(&[
            ("cut.gz", &broken),
            ("x.txt", b"x^ a text file"),
        ]));
        assert_eq!(s.incomplete.len(), 1, "{:?}", s.incomplete);
        assert!(s.incomplete[0].contains("inside gzip /cut.gz"));
    }

    #[test]
    fn a_secret_as_a_file_name_or_link_target_is_found_and_never_shown() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, format!("work/{TOKEN}/"), &[][..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("work/{TOKEN}/inner.txt"), &b"hello"[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(
            &mut h,
            format!("work/{}.bin", hex::encode("other-abcdefgh")),
            &b"hello"[..],
        )
        .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "work/link", format!("/tmp/{TOKEN}"))
            .unwrap();
        let (s, _) = scan(&b.into_inner().unwrap());
        let got = places(&s);
        assert_eq!(
            got,
            [
                "OTHER: hex in the file name /work/[name withheld: holds a secret]",
                "TOKEN: the file name /work/[name withheld: holds a secret]",
                "TOKEN: the link target of /work/link",
            ]
        );
        let all = format!("{got:?}");
        assert!(!all.contains("tok-0123") && !all.contains(&hex::encode("other-abcdefgh")));
    }

    #[test]
    fn file_names_inside_archives_are_searched_too() {
        let z = zip_of(&[(TOKEN, b"x")], zip::CompressionMethod::Stored);
        let (s, _) = scan(&tar_of(&[("a.zip", &z)]));
        assert!(
            places(&s).contains(
                &"TOKEN: the file name [name withheld: holds a secret] inside zip /a.zip"
                    .to_string()
            ),
            "{:?}",
            places(&s)
        );
        assert!(!format!("{:?}", places(&s)).contains("tok-0123"));
    }

    #[test]
    fn environ_style_lookups_find_every_form() {
        let n = needles();
        let env = format!("A=1\0B={}\0", hex::encode("other-abcdefgh"));
        assert_eq!(n.find_in(env.as_bytes()), ["OTHER"]);
        assert!(n.find_in(b"nothing=here").is_empty());
    }

    #[test]
    fn two_keys_with_one_value_are_both_named() {
        let n = Needles::from_pairs([("A", "same-value-123"), ("B", "same-value-123")], 8);
        assert_eq!(n.find_in(b"..same-value-123.."), ["A", "B"]);
    }
}
