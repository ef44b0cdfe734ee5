//! What the probe script printed, parsed: the tab-separated fact lines of its text section
//! ([`parse_facts`] into [`Facts`]) and the framed binary sections after it ([`split_output`]
//! into [`Output`]: environ, argv, deleted-but-open files, the tmpfs tar). Parsing only; what
//! the facts mean is decided by the probe families beside this file.

use std::collections::{BTreeMap, BTreeSet};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    pub root: String,
    pub mount_point: String,
    pub read_only: bool,
    pub fstype: String,
    pub source: String,
}

/// `\040`-style octal escapes of mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(line: &str) -> Option<MountLine> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 6 || r.len() < 2 {
        return None;
    }
    Some(MountLine {
        root: unescape(l[3]),
        mount_point: unescape(l[4]),
        read_only: l[5].split(',').any(|o| o == "ro"),
        fstype: r[0].to_string(),
        source: unescape(r[1]),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    Ok,
    Missing,
    Err(String),
}

/// What the script saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub tools: BTreeSet<String>,
    pub uid: Option<u32>,
    /// `self` / `1` -> field -> value.
    pub status: BTreeMap<String, BTreeMap<String, String>>,
    pub mounts: Vec<MountLine>,
    pub pid1_cmdline: Option<Vec<u8>>,
    pub cgroup: BTreeMap<String, String>,
    pub ifaces: Vec<String>,
    pub unix: Vec<String>,
    /// `Some(true)` when 169.254.169.254:80 accepted a connection.
    pub metadata_open: Option<bool>,
    pub find_done: bool,
    pub found_sockets: Vec<String>,
    pub found_names: Vec<String>,
    pub exists_secret: Vec<String>,
    pub exists_deny: Vec<String>,
    /// (kind `ro`/`rw`/`root`, path, result).
    pub writes: Vec<(String, String, WriteResult)>,
    /// Each masked path and what was seen there (`absent`, `null`, `empty`, `unreadable`,
    /// `listed`, `readable`).
    pub masked: Vec<(String, String)>,
    /// Each read-only path, what it is (`absent`, `dir`, or the result of a write-open of the
    /// file: `ok`, `err`) and the error.
    pub readonly: Vec<(String, String, String)>,
    /// TCP endpoints asked `GET /_ping`: (host, port, the reply's first bytes).
    pub tcp_asks: Vec<(String, String, Vec<u8>)>,
    /// Every endpoint was asked (`nc` and `od` present, the asks waited for).
    pub asks_done: bool,
    /// More endpoints than [`super::MAX_TCP_ASKS`] were found; the rest were not asked.
    pub asks_cut: bool,
    /// How the syscall probe went, when one was sent.
    pub sysprobe: Option<super::super::sysprobe::Run>,
    /// The script reached its end (it was not cut short).
    pub complete: bool,
    /// What the egress proxy answered, per destination asked.
    pub egress: Vec<EgressAsk>,
    /// Connections tried without the proxy.
    pub direct: Vec<DirectTry>,
    /// The egress section ran (`nc` present).
    pub egress_done: bool,
}

/// One destination asked through the egress proxy: `kind` is `allowed` or `refused` (what the
/// host expects), `line` the answer's status line (empty: no answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EgressAsk {
    pub kind: String,
    pub authority: String,
    pub line: String,
}

/// One connection tried without the proxy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectTry {
    pub host: String,
    pub port: String,
    pub open: bool,
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.trim()).ok()
}

/// Parses the text section of the script's output.
pub fn parse_facts(text: &str) -> Facts {
    let mut f = Facts::default();
    for line in text.lines() {
        let mut parts = line.splitn(2, '\t');
        let tag = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        let fields: Vec<&str> = rest.split('\t').collect();
        match tag {
            "TOOL" => {
                f.tools.insert(rest.to_string());
            }
            "UID" => f.uid = rest.trim().parse().ok(),
            "STATUS" => {
                let mut p = rest.splitn(2, '\t');
                let who = p.next().unwrap_or("").to_string();
                let l = p.next().unwrap_or("");
                if let Some((k, v)) = l.split_once(':') {
                    f.status
                        .entry(who)
                        .or_default()
                        .insert(k.to_string(), v.trim().to_string());
                }
            }
            "MOUNT" => f.mounts.extend(parse_mountinfo(rest)),
            "PID1" => f.pid1_cmdline = hex_decode(rest).filter(|b| !b.is_empty()),
            "CG" if fields.len() >= 2 => {
                f.cgroup
                    .insert(fields[0].to_string(), fields[1].trim().to_string());
            }
            "NETDEV" => {
                if let Some((name, _)) = rest.split_once(':') {
                    let name = name.trim();
                    if !name.is_empty() && !name.contains('|') {
                        f.ifaces.push(name.to_string());
                    }
                }
            }
            "UNIX" => f.unix.push(rest.to_string()),
            "META" => f.metadata_open = Some(rest == "open"),
            "EGRESS" if fields.len() >= 2 => f.egress.push(EgressAsk {
                kind: fields[0].to_string(),
                authority: fields[1].to_string(),
                line: fields.get(2).unwrap_or(&"").trim().to_string(),
            }),
            "DIRECT" if fields.len() >= 3 => f.direct.push(DirectTry {
                host: fields[0].to_string(),
                port: fields[1].to_string(),
                open: fields[2] == "open",
            }),
            "EGRESSDONE" => f.egress_done = true,
            "FIND" if fields.len() >= 2 => match fields[0] {
                "sock" => f.found_sockets.push(fields[1].to_string()),
                _ => f.found_names.push(fields[1].to_string()),
            },
            "FINDDONE" => f.find_done = true,
            "EXISTS" if fields.len() >= 2 => match fields[0] {
                "secret" => f.exists_secret.push(fields[1].to_string()),
                _ => f.exists_deny.push(fields[1].to_string()),
            },
            "WRITE" if fields.len() >= 3 => {
                let r = match fields[2] {
                    "ok" => WriteResult::Ok,
                    "missing" => WriteResult::Missing,
                    _ => WriteResult::Err(fields.get(3).unwrap_or(&"").to_string()),
                };
                f.writes
                    .push((fields[0].to_string(), fields[1].to_string(), r));
            }
            "MASK" if fields.len() >= 2 => f
                .masked
                .push((fields[0].to_string(), fields[1].to_string())),
            "ROPATH" if fields.len() >= 2 => f.readonly.push((
                fields[0].to_string(),
                fields[1].to_string(),
                fields.get(2).unwrap_or(&"").to_string(),
            )),
            "ASK" if fields.len() >= 2 => f.tcp_asks.push((
                fields[0].to_string(),
                fields[1].to_string(),
                fields
                    .get(2)
                    .and_then(|h| hex_decode(h))
                    .unwrap_or_default(),
            )),
            "ASKCUT" => f.asks_cut = true,
            "ASKDONE" => f.asks_done = true,
            "SYSPROBE" if !fields.is_empty() => {
                f.sysprobe = Some(match fields[0] {
                    "ran" => super::super::sysprobe::Run::Ran {
                        dir: fields.get(1).unwrap_or(&"").to_string(),
                        status: fields.get(2).unwrap_or(&"").to_string(),
                        out: fields
                            .get(3)
                            .and_then(|h| hex_decode(h))
                            .unwrap_or_default(),
                    },
                    _ => super::super::sysprobe::Run::NotRun(
                        fields.get(1).unwrap_or(&"").to_string(),
                    ),
                })
            }
            "END" => f.complete = true,
            _ => {}
        }
    }
    f
}

/// The script's stdout, split into its framed sections.
#[derive(Debug, Default, PartialEq)]
pub struct Output {
    pub facts: Facts,
    /// pid -> raw environ bytes.
    pub environ: Vec<(String, Vec<u8>)>,
    /// pids whose environ could not be read.
    pub unreadable: Vec<String>,
    /// pid -> raw cmdline bytes (argv, NUL-separated).
    pub cmdline: Vec<(String, Vec<u8>)>,
    /// pid -> the content of a file it holds open that was deleted.
    pub deleted: Vec<(String, Vec<u8>)>,
    /// pids holding a deleted file that did not fit the bound (`deleted_max`).
    pub deleted_cut: Vec<String>,
    /// The tar of the tmpfs mounts, when there were any.
    pub tar: Option<Vec<u8>>,
    /// tar's exit status as printed (`0`, `1`, `notar`); `None` when the stream was cut.
    pub tar_rc: Option<String>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Splits the output at the `\n--clw-<nonce>-` markers. Each marker carries a kind and an
/// argument up to `--\n`; bytes up to the next marker belong to it.
pub fn split_output(stdout: &[u8], nonce: &str) -> Output {
    let marker = format!("\n--clw-{nonce}-");
    let m = marker.as_bytes();
    let first = find(stdout, m, 0).unwrap_or(stdout.len());
    let mut out = Output {
        facts: parse_facts(&String::from_utf8_lossy(&stdout[..first])),
        ..Default::default()
    };
    let mut pos = first;
    while pos < stdout.len() {
        let head_start = pos + m.len();
        let Some(head_end) = find(stdout, b"--\n", head_start) else {
            break;
        };
        let head = String::from_utf8_lossy(&stdout[head_start..head_end]).into_owned();
        let body_start = head_end + 3;
        let (kind, arg) = head.split_once(' ').unwrap_or((head.as_str(), ""));
        // The tar body is binary and may be long: its end is the last `tarrc` marker.
        let next = if kind == "tar" {
            let rc = format!("{marker}tarrc ");
            let mut last = None;
            let mut at = body_start;
            while let Some(p) = find(stdout, rc.as_bytes(), at) {
                last = Some(p);
                at = p + 1;
            }
            last.unwrap_or(stdout.len())
        } else {
            find(stdout, m, body_start).unwrap_or(stdout.len())
        };
        let body = stdout[body_start.min(next)..next].to_vec();
        match kind {
            "env" => out.environ.push((arg.to_string(), body)),
            "cmd" => out.cmdline.push((arg.to_string(), body)),
            "del" => out.deleted.push((arg.to_string(), body)),
            "delcut" => out.deleted_cut.push(arg.to_string()),
            "unreadable" => {
                out.environ.retain(|(p, _)| p != arg);
                out.unreadable.push(arg.to_string());
            }
            "tar" => out.tar = Some(body),
            "tarrc" => out.tar_rc = Some(arg.to_string()),
            _ => {}
        }
        pos = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_parsed_with_escapes() {
        let m = parse_mountinfo(
            "36 35 98:0 /mnt\\040x /a\\040b ro,noatime master:1 - ext3 /dev/root rw",
        )
        .unwrap();
        assert_eq!(m.root, "/mnt x");
        assert_eq!(m.mount_point, "/a b");
        assert!(m.read_only);
        assert_eq!(m.fstype, "ext3");
    }

    #[test]
    fn output_sections_are_split_at_the_nonce_markers() {
        let mut out = b"TOOL\ttar\nEND\n".to_vec();
        out.extend_from_slice(b"\n--clw-n1-env 1--\nA=1\0B=2\0");
        out.extend_from_slice(b"\n--clw-n1-env 7--\n");
        out.extend_from_slice(b"\n--clw-n1-unreadable 7--\n");
        out.extend_from_slice(b"\n--clw-n1-tar--\nTARBYTES\n--clw-n1-env 9--\nstill tar");
        out.extend_from_slice(b"\n--clw-n1-tarrc 0--\n");
        let o = split_output(&out, "n1");
        assert!(o.facts.complete);
        assert_eq!(o.environ, vec![("1".to_string(), b"A=1\0B=2\0".to_vec())]);
        assert_eq!(o.unreadable, ["7"]);
        assert_eq!(
            o.tar.as_deref(),
            Some(&b"TARBYTES\n--clw-n1-env 9--\nstill tar"[..])
        );
        assert_eq!(o.tar_rc.as_deref(), Some("0"));
    }

    #[test]
    fn deleted_files_and_argv_are_split_out_of_the_stream() {
        let mut out = b"END\n".to_vec();
        out.extend_from_slice(b"\n--clw-n1-env 7--\nA=1\0");
        out.extend_from_slice(b"\n--clw-n1-cmd 7--\nsleep\0x\0");
        out.extend_from_slice(b"\n--clw-n1-del 7--\nheld content");
        out.extend_from_slice(b"\n--clw-n1-delcut 8--\n");
        let o = split_output(&out, "n1");
        assert_eq!(o.cmdline, vec![("7".to_string(), b"sleep\0x\0".to_vec())]);
        assert_eq!(o.deleted, vec![("7".to_string(), b"held content".to_vec())]);
        assert_eq!(o.deleted_cut, ["8"]);
    }
}
