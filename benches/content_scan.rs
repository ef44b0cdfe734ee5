//! Throughput of `verify`'s host-side content scan (`verify::scan::scan_tar`, what `verify`
//! runs over the tar stream of a sandbox's filesystem) over ~256 MiB of mixed content
//! (`CLW_BENCH_SCAN_MIB` to change): log-like text, random binary, wrapped base64 blobs,
//! gzip files, many small config files, with 10 secrets planted in as many forms (raw,
//! base64, hex, url-encoded, UTF-16LE, split over lines, inside gzip, inside a tar.gz, inside a
//! zip, as a file name). Side by side with the ceiling of the scan it replaced: one
//! Aho-Corasick pass over the same bytes for the raw values only, with no tar walk and no
//! decoding. Checks that every planted secret is found; asserts nothing about time. Prints
//! figures and, with `CLW_BENCH_OUT=<file>`, writes them as JSON.
//!
//! `cargo bench --bench content_scan` (release build); `make bench` runs it for
//! docs/BENCHMARKS.md.

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clw_fortress::verify::scan::{scan_tar, Budget, Needles};

/// xorshift64: reproducible content without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

const WORDS: [&str; 16] = [
    "request",
    "token",
    "GET",
    "/api/v1/items",
    "200",
    "user",
    "session",
    "INFO",
    "WARN",
    "cache",
    "miss",
    "latency_ms=",
    "agent",
    "tool",
    "exec",
    "ok",
];

fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 128);
    while out.len() < n {
        write!(
            out,
            "2026-11-22T10:{:02}:{:02}Z",
            rng.below(60),
            rng.below(60)
        )
        .unwrap();
        for _ in 0..10 {
            out.push(b' ');
            out.extend_from_slice(WORDS[rng.below(16) as usize].as_bytes());
        }
        out.push(b'\n');
    }
    out.truncate(n);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

struct Corpus {
    tar: Vec<u8>,
    files: usize,
    secrets: Vec<(String, String)>,
}

fn corpus(mib: usize) -> Corpus {
    use base64::engine::general_purpose::STANDARD;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let secrets: Vec<(String, String)> = (0..10)
        .map(|i| {
            let v = format!("sk-bench-{i}-{}", hex::encode(rng.bytes(20)));
            (format!("SECRET_{i}"), v)
        })
        .collect();
    let v = |i: usize| secrets[i].1.as_bytes().to_vec();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let target = mib << 20;
    let mut total = 0usize;
    let mut n = 0usize;
    while total < target {
        n += 1;
        let (name, data) = match n % 20 {
            0..=6 => {
                let len = 64 * 1024 + rng.below(4 << 20) as usize;
                (format!("var/log/app-{n}.log"), text(&mut rng, len))
            }
            7..=11 => {
                let len = (1 << 20) + rng.below(7 << 20) as usize;
                (format!("usr/lib/blob-{n}.so"), rng.bytes(len))
            }
            12..=14 => {
                let len = (1 << 20) + rng.below(2 << 20) as usize;
                let raw = rng.bytes(len);
                let b64: Vec<u8> = STANDARD
                    .encode(raw)
                    .into_bytes()
                    .chunks(76)
                    .flat_map(|c| c.iter().copied().chain(*b"\n"))
                    .collect();
                (format!("srv/data-{n}.b64"), b64)
            }
            15 => (
                format!("usr/share/doc/pkg-{n}/changelog.gz"),
                gzip(&text(&mut rng, 1 << 20)),
            ),
            _ => {
                // A burst of small configuration files.
                for k in 0..200 {
                    let len = 1024 + rng.below(15 * 1024) as usize;
                    let d = text(&mut rng, len);
                    total += d.len();
                    files.push((format!("etc/conf-{n}/file-{k}.conf"), d));
                }
                continue;
            }
        };
        total += data.len();
        files.push((name, data));
    }
    // The planted leaks, each in another form, inside ordinary files.
    let mut plant = |i: usize, form: Vec<u8>| {
        let count = files.len();
        let f = &mut files[i * 37 % count].1;
        let at = rng.below(f.len() as u64) as usize;
        f.splice(at..at, form);
    };
    plant(0, v(0));
    plant(1, STANDARD.encode(v(1)).into_bytes());
    plant(2, hex::encode(v(2)).into_bytes());
    plant(
        3,
        v(3).iter()
            .flat_map(|b| format!("%{b:02X}").into_bytes())
            .collect(),
    );
    plant(
        4,
        secrets[4]
            .1
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect(),
    );
    let mut split = v(5);
    split.insert(10, b'\n');
    plant(5, split);
    files.push(("tmp/leak.gz".into(), gzip(&v(6))));
    let mut inner = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(v(7).len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    inner.append_data(&mut h, "notes.txt", &v(7)[..]).unwrap();
    files.push((
        "tmp/backup.tar.gz".into(),
        gzip(&inner.into_inner().unwrap()),
    ));
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file(
        "doc.txt",
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    z.write_all(&v(8)).unwrap();
    files.push(("tmp/archive.zip".into(), z.finish().unwrap().into_inner()));
    files.push((
        format!("tmp/{}", secrets[9].1),
        b"named after a secret".to_vec(),
    ));

    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    Corpus {
        tar: b.into_inner().unwrap(),
        files: files.len(),
        secrets,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("content_scan: run with `cargo bench --bench content_scan`");
        return;
    }
    let mib: usize = std::env::var("CLW_BENCH_SCAN_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let runs: usize = std::env::var("CLW_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let t = Instant::now();
    let c = corpus(mib);
    let size_mib = c.tar.len() as f64 / (1 << 20) as f64;
    println!(
        "corpus: {size_mib:.1} MiB tar, {} files, {} secrets (built in {:.1} s)",
        c.files,
        c.secrets.len(),
        t.elapsed().as_secs_f64()
    );
    let needles = Needles::from_pairs(c.secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())), 8);
    println!("matcher: {} patterns", needles.pattern_count());

    let mut scan_mibs = Vec::new();
    let mut expanded = 0;
    for run in 0..runs {
        let mut budget = Budget::new(u64::MAX / 4, Duration::from_secs(3600));
        let t = Instant::now();
        let s = scan_tar(
            &c.tar[..],
            "/",
            &["secrets.env".into()],
            &needles,
            &mut budget,
        )
        .expect("the corpus is a valid tar");
        let secs = t.elapsed().as_secs_f64();
        let mut keys: Vec<&str> = s.findings.iter().map(|f| f.key.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            c.secrets.len(),
            "every planted secret is found: {:?}",
            s.findings
        );
        assert!(s.incomplete.is_empty(), "{:?}", s.incomplete);
        expanded = budget.expanded;
        let rate = size_mib / secs;
        println!(
            "run {run}: {secs:.2} s, {rate:.0} MiB/s of sandbox bytes ({} findings, {:.1} MiB decompressed)",
            s.findings.len(),
            expanded as f64 / (1 << 20) as f64
        );
        if run == 0 {
            for f in &s.findings {
                println!("  {}: {}", f.key, f.place);
            }
        }
        scan_mibs.push(rate);
    }

    // The ceiling of the scan this replaced: raw values only, one pass, nothing opened.
    let raw = aho_corasick::AhoCorasick::new(c.secrets.iter().map(|(_, v)| v)).unwrap();
    let mut raw_mibs = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let n = raw.find_overlapping_iter(&c.tar[..]).count();
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(n);
        raw_mibs.push(size_mib / secs);
    }
    let (scan, raw) = (median(scan_mibs.clone()), median(raw_mibs.clone()));
    println!(
        "content scan: {scan:.0} MiB/s (median of {runs}); raw-only single pass: {raw:.0} MiB/s"
    );
    if let Ok(path) = std::env::var("CLW_BENCH_OUT") {
        let out = serde_json::json!({
            "size_mib": size_mib,
            "files": c.files,
            "secrets": c.secrets.len(),
            "patterns": needles.pattern_count(),
            "expanded_mib": expanded as f64 / (1 << 20) as f64,
            "scan_mib_per_s": scan_mibs,
            "raw_only_mib_per_s": raw_mibs,
            "scan_median": scan,
            "raw_only_median": raw,
        });
        std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    }
}
