//! The in-sandbox half of `verify`: the one POSIX `sh` script exec'd per sandbox, the parsing
//! of what it prints, and the pure decisions that turn those facts into probe outcomes.
//!
//! The script only *observes* (status, mountinfo, cgroup files, interfaces, masked paths,
//! writes of empty probe files that it removes again, `GET /_ping` to TCP endpoints, one run
//! of the syscall probe program it receives on stdin and removes again) and prints facts as
//! tab-separated lines; every decision is made here on the host, so it can be unit-tested. It
//! must never carry a secret value: it looks for paths and names only. After the facts it
//! streams, framed by a per-run nonce, the raw bytes the host searches for secret values
//! (every process's environ and argv, files deleted but held open, a tar of tmpfs mounts).

use std::collections::{BTreeMap, BTreeSet};

use super::endpoint::Answer;
use super::{Expect, Outcome, ProbeResult};
use crate::cgroup;

/// Which in-sandbox paths and mounts one run looks at (derived from the manifest and the
/// container's actual mounts; never a secret value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptInput {
    /// Random per run; frames the binary sections of the output.
    pub nonce: String,
    /// File names searched for anywhere (`secrets.env`, the secrets file's own name).
    pub secret_names: Vec<String>,
    /// Paths where the secrets file would be if a mount exposed it.
    pub secret_paths: Vec<String>,
    /// Paths where a `deny` path would be if a mount exposed it.
    pub deny_paths: Vec<String>,
    pub ro_targets: Vec<String>,
    pub rw_targets: Vec<String>,
    pub root_readonly: bool,
    /// Tmpfs mount points whose content is streamed out for the host-side scan.
    pub tmpfs: Vec<String>,
    /// The size of the syscall probe program the exec's stdin carries (0: none is sent).
    pub sysprobe_size: usize,
    /// Writable places to run the syscall probe from, in order (tmpfs mounts, then writable
    /// mounts: a `noexec` tmpfs is passed over).
    pub exec_dirs: Vec<String>,
    /// The most bytes of deleted-but-open files streamed out, all processes together.
    pub deleted_max: u64,
}

/// Paths the engines mask (Docker 20.10's and Podman 4.3's defaults, measured alike): absent,
/// the null device, an empty directory or unreadable inside.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths the engines mount read-only over `/proc`.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// TCP endpoints asked for an engine API at most, per run.
pub const MAX_TCP_ASKS: usize = 32;

/// File names of engine sockets (Docker, Podman, containerd, CRI-O, BuildKit).
pub const ENGINE_SOCKET_NAMES: [&str; 7] = [
    "docker.sock",
    "podman.sock",
    "containerd.sock",
    "crio.sock",
    "cri-dockerd.sock",
    "buildkitd.sock",
    "dockershim.sock",
];

/// Single-quoted for `sh`: safe for any byte but NUL.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn words(list: &[String]) -> String {
    list.iter()
        .map(|s| sh_quote(s))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The script, for `sh -c`. POSIX sh and busybox-level tools only; every tool is optional
/// (a missing one turns its probe inconclusive, never pass).
pub fn script(input: &ScriptInput) -> String {
    let mut find_names: Vec<String> = input.secret_names.clone();
    find_names.extend(ENGINE_SOCKET_NAMES.iter().map(|s| s.to_string()));
    let find_expr = find_names
        .iter()
        .map(|n| format!("-name {}", sh_quote(n)))
        .collect::<Vec<_>>()
        .join(" -o ");
    let tmpfs_rel: Vec<String> = input
        .tmpfs
        .iter()
        .map(|t| t.trim_start_matches('/').to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let ports = super::endpoint::ENGINE_PORTS
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let ping = String::from_utf8_lossy(super::endpoint::PING)
        .replace('\r', "\\r")
        .replace('\n', "\\n");
    format!(
        r#"N={nonce}
T="$(printf '\t')"
emit() ( IFS="$T"; printf '%s\n' "$*" )
clean() {{ printf '%s' "$1" | tr '\n\t' '  '; }}
has() {{ command -v "$1" >/dev/null 2>&1; }}
# stdin carries the syscall probe program: keep it in the first writable place, read it all.
sys_bin=""
if [ {sys_size} -gt 0 ]; then
  for d in {exec_dirs}; do
    if [ -d "$d" ] && [ -w "$d" ] && head -c {sys_size} > "$d/.clw-verify-sys-$N" 2>/dev/null; then sys_bin="$d/.clw-verify-sys-$N"; break; fi
  done
  [ -n "$sys_bin" ] || head -c {sys_size} >/dev/null 2>&1
fi
exec 0</dev/null
for t in find tar unshare mount nc od timeout; do has "$t" && emit TOOL "$t"; done
emit UID "$(id -u 2>/dev/null)"
for p in self 1; do
  while IFS= read -r l; do
    case "$l" in Uid:*|Cap*|NoNewPrivs:*|Seccomp:*) emit STATUS "$p" "$l";; esac
  done < /proc/$p/status
done
while IFS= read -r l; do emit MOUNT "$l"; done < /proc/self/mountinfo
has od && emit PID1 "$(od -An -v -tx1 /proc/1/cmdline 2>/dev/null | tr -d ' \n')"
for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
  /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us \
  /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us \
  /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; do
  [ -r "$f" ] && emit CG "$f" "$(head -n 1 "$f" 2>/dev/null)"
done
while IFS= read -r l; do emit NETDEV "$l"; done < /proc/net/dev
n=0
while IFS= read -r l; do n=$((n+1)); [ $n -le 512 ] && emit UNIX "$l"; done < /proc/net/unix
if has nc; then
  if nc -w 2 169.254.169.254 80 </dev/null >/dev/null 2>&1; then emit META open; else emit META closed; fi
fi
if has find; then
  find / \( -path /proc -o -path /sys \) -prune -o \( -type s -o {find_expr} \) -print 2>/dev/null |
  while IFS= read -r p; do if [ -S "$p" ]; then emit FIND sock "$p"; else emit FIND name "$p"; fi; done
  emit FINDDONE
fi
for p in {secret_paths}; do {{ [ -e "$p" ] || [ -L "$p" ]; }} && emit EXISTS secret "$p"; done
for p in {deny_paths}; do {{ [ -e "$p" ] || [ -L "$p" ]; }} && emit EXISTS deny "$p"; done
probe_write() {{
  if [ ! -e "$2" ]; then emit WRITE "$1" "$2" missing; return; fi
  if [ -d "$2" ]; then w="$2/.clw-verify-$N"; else w="$2"; fi
  # Append nothing: on a file this changes nothing even when the write is (wrongly) allowed.
  if err=$( (true >> "$w") 2>&1 ); then
    [ -d "$2" ] && rm -f "$w"
    emit WRITE "$1" "$2" ok
  else
    emit WRITE "$1" "$2" err "$(clean "$err")"
  fi
}}
for p in {ro}; do probe_write ro "$p"; done
for p in {rw}; do probe_write rw "$p"; done
{root}
for p in {masked}; do
  if [ ! -e "$p" ]; then emit MASK "$p" absent
  elif [ -c "$p" ]; then emit MASK "$p" null
  elif [ -d "$p" ]; then
    if [ ! -r "$p" ] || [ ! -x "$p" ]; then emit MASK "$p" unreadable
    elif [ -z "$(ls -A "$p" 2>/dev/null)" ]; then emit MASK "$p" empty
    else emit MASK "$p" listed; fi
  elif [ "$(head -c 1 "$p" 2>/dev/null | wc -c)" -gt 0 ]; then emit MASK "$p" readable
  else emit MASK "$p" unreadable; fi
done
for p in {readonly}; do
  if [ ! -e "$p" ]; then emit ROPATH "$p" absent
  elif [ -f "$p" ]; then
    if err=$( (true >> "$p") 2>&1 ); then emit ROPATH "$p" ok; else emit ROPATH "$p" err "$(clean "$err")"; fi
  else emit ROPATH "$p" dir; fi
done
# TCP endpoints: every listener of this network namespace, the engines' ports on loopback
# and the default gateway. Each is asked `GET /_ping`, a few at a time.
ip4() {{ printf '%s\n' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)/0x\4 0x\3 0x\2 0x\1/' | {{ read -r a b c d; printf '%d.%d.%d.%d' "$a" "$b" "$c" "$d"; }}; }}
ip6() {{ printf '%s\n' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/g; s/\(....\)/\1:/g; s/:$//'; }}
targets=""
add() {{ case " $targets " in *" $1,$2 "*) ;; *) targets="$targets $1,$2";; esac; }}
for f in /proc/net/tcp /proc/net/tcp6; do
  [ -r "$f" ] || continue
  while read -r sl local rem st rest; do
    [ "$st" = 0A ] || continue
    a=${{local%:*}}; port=$((0x${{local##*:}}))
    case "$a" in
      00000000|00000000000000000000000000000000) add 127.0.0.1 "$port";;
      ????????) add "$(ip4 "$a")" "$port";;
      0000000000000000FFFF0000????????) add "$(ip4 "${{a#0000000000000000FFFF0000}}")" "$port";;
      *) add "$(ip6 "$a")" "$port";;
    esac
  done < "$f"
done
for port in {ports}; do add 127.0.0.1 "$port"; done
while read -r iface dest gw rest; do
  [ "$dest" = 00000000 ] && [ "$gw" != 00000000 ] && for port in {ports}; do add "$(ip4 "$gw")" "$port"; done
done < /proc/net/route 2>/dev/null
ask() {{
  if has timeout; then
    r=$(printf '{ping}' | timeout 3 nc -w 2 "$1" "$2" 2>/dev/null | head -c {max_reply} | od -An -v -tx1 | tr -d ' \n')
  else
    r=$(printf '{ping}' | nc -w 2 "$1" "$2" 2>/dev/null | head -c {max_reply} | od -An -v -tx1 | tr -d ' \n')
  fi
  emit ASK "$1" "$2" "$r"
}}
if has nc && has od; then
  n=0
  for t in $targets; do
    n=$((n+1)); if [ $n -gt {max_asks} ]; then emit ASKCUT "$n"; break; fi
    ask "${{t%,*}}" "${{t##*,}}" &
    # Four at a time: each ask is a handful of processes, and the pids limit counts them.
    [ $((n % 4)) -eq 0 ] && wait
  done
  wait
  emit ASKDONE
fi
if [ {sys_size} -gt 0 ]; then
  if [ -z "$sys_bin" ]; then emit SYSPROBE none "nowhere to write it (tried {exec_dirs_text})"
  elif [ "$(uname -m 2>/dev/null)" != x86_64 ]; then rm -f "$sys_bin"; emit SYSPROBE none "it is x86_64 code and this kernel is $(uname -m 2>/dev/null)"
  else
    chmod 700 "$sys_bin" 2>/dev/null
    tried=""; ran=""
    for d in {exec_dirs}; do
      [ -d "$d" ] && [ -w "$d" ] || continue
      p="$d/.clw-verify-sys-$N"
      if [ "$p" != "$sys_bin" ]; then
        {{ cat "$sys_bin" > "$p" && chmod 700 "$p"; }} 2>/dev/null || {{ rm -f "$p"; continue; }}
      fi
      "$p" > "$p.out" 2>/dev/null; rc=$?
      if [ "$rc" = 126 ] || [ "$rc" = 127 ]; then
        tried="$tried $d"; [ "$p" = "$sys_bin" ] || rm -f "$p"; rm -f "$p.out"; continue
      fi
      emit SYSPROBE ran "$d" "$rc" "$(od -An -v -tx1 < "$p.out" | tr -d ' \n')"
      ran=1; [ "$p" = "$sys_bin" ] || rm -f "$p"; rm -f "$p.out"; break
    done
    rm -f "$sys_bin"
    [ -n "$ran" ] || emit SYSPROBE none "not executable from:$tried (mounted noexec?)"
  fi
fi
emit END
left={deleted_max}
OIFS=$IFS; NL='
'

for d in /proc/[0-9]*; do
  p=${{d#/proc/}}
  printf '\n--clw-%s-env %s--\n' "$N" "$p"
  # Unreadable unless the process is gone or exiting meanwhile (a dead one holds nothing).
  cat "$d/environ" 2>/dev/null || {{
    st=""; while IFS= read -r l; do case "$l" in State:*) st=$l; break;; esac; done 2>/dev/null < "$d/status"
    case "$st" in ""|*Z*|*X*) ;; *) printf '\n--clw-%s-unreadable %s--\n' "$N" "$p";; esac
  }}
  printf '\n--clw-%s-cmd %s--\n' "$N" "$p"
  cat "$d/cmdline" 2>/dev/null
  # Files deleted but still held open: `ls -l` of the fd directory, one fork per process.
  fds=$(ls -l "$d/fd" 2>/dev/null)
  set -f; IFS=$NL
  for l in $fds; do
    case "$l" in *" (deleted)") ;; *) continue;; esac
    fd=${{l%% -> *}}; f="$d/fd/${{fd##* }}"
    [ -f "$f" ] || continue
    s=$(stat -L -c %s "$f" 2>/dev/null) || s=0
    if [ "$s" -gt "$left" ]; then printf '\n--clw-%s-delcut %s--\n' "$N" "$p"; continue; fi
    left=$((left - s))
    printf '\n--clw-%s-del %s--\n' "$N" "$p"
    head -c "$s" "$f" 2>/dev/null
  done
  IFS=$OIFS; set +f
done
{tar}
"#,
        nonce = sh_quote(&input.nonce),
        sys_size = input.sysprobe_size,
        exec_dirs = words(&input.exec_dirs),
        exec_dirs_text = input
            .exec_dirs
            .join(" ")
            .replace(['\'', '"', '$', '`', '\\'], "?"),
        secret_paths = words(&input.secret_paths),
        deny_paths = words(&input.deny_paths),
        ro = words(&input.ro_targets),
        rw = words(&input.rw_targets),
        root = if input.root_readonly {
            "probe_write root /\nprobe_write root /etc"
        } else {
            ""
        },
        masked = MASKED_PATHS.join(" "),
        readonly = READONLY_PATHS.join(" "),
        ports = ports,
        ping = ping,
        max_reply = super::endpoint::MAX_REPLY,
        max_asks = MAX_TCP_ASKS,
        deleted_max = input.deleted_max,
        tar = if tmpfs_rel.is_empty() {
            String::new()
        } else {
            format!(
                "printf '\\n--clw-%s-tar--\\n' \"$N\"\nif has tar; then tar -c -f - -C / {} 2>/dev/null; rc=$?; else rc=notar; fi\nprintf '\\n--clw-%s-tarrc %s--\\n' \"$N\" \"$rc\"",
                words(&tmpfs_rel)
            )
        },
    )
}

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
    /// More endpoints than [`MAX_TCP_ASKS`] were found; the rest were not asked.
    pub asks_cut: bool,
    /// How the syscall probe went, when one was sent.
    pub sysprobe: Option<super::sysprobe::Run>,
    /// The script reached its end (it was not cut short).
    pub complete: bool,
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
                    "ran" => super::sysprobe::Run::Ran {
                        dir: fields.get(1).unwrap_or(&"").to_string(),
                        status: fields.get(2).unwrap_or(&"").to_string(),
                        out: fields
                            .get(3)
                            .and_then(|h| hex_decode(h))
                            .unwrap_or_default(),
                    },
                    _ => super::sysprobe::Run::NotRun(fields.get(1).unwrap_or(&"").to_string()),
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

/// What the host knows about the container, for the decisions below.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// The container's process as the engine started it (`Path` + `Args`).
    pub command: Vec<String>,
    /// Names searched for (for the detail line).
    pub secret_names: Vec<String>,
    /// Paths found by name in the archive the engine streamed out (host-side evidence).
    pub archive_name_hits: Vec<String>,
    /// Expected CPUs after clamping to the engine host's count.
    pub cpus: Option<f64>,
    /// Unix sockets reachable inside, asked for an engine API from the host.
    pub sockets: Vec<(String, Answer)>,
}

fn r(probe: &str, outcome: Outcome, detail: impl Into<String>) -> ProbeResult {
    ProbeResult::new(probe, outcome, detail)
}

fn list(v: &[String]) -> String {
    const MAX: usize = 5;
    let mut s = v.iter().take(MAX).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > MAX {
        s.push_str(&format!(" and {} more", v.len() - MAX));
    }
    s
}

/// Mount points every container has (rootfs, proc, sys, dev, cgroup, the engine's
/// hostname/hosts/resolv.conf binds) and the engine's masks under `/proc` and `/sys`.
fn standard_mount(mp: &str) -> bool {
    const EXACT: [&str; 7] = [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
    ];
    EXACT.contains(&mp)
        || ["/proc/", "/sys/", "/dev/"]
            .iter()
            .any(|p| mp.starts_with(p))
}

/// The read-only tmpfs the engine adapter puts over Podman's automatic writable `/tmp`,
/// `/var/tmp` and `/run` (`engine::podman::SHADOW_TMPFS`): created empty and read-only, it
/// exposes nothing and accepts no writes, so it is not an extra mount. A writable tmpfs there
/// still is.
fn shadow_tmpfs(m: &MountLine) -> bool {
    m.fstype == "tmpfs"
        && m.read_only
        && crate::engine::podman::AUTO_TMPFS.contains(&m.mount_point.as_str())
}

/// The engine's init binary (`init: true`), bind-mounted read-only over one path: Docker's tini
/// at `/bin/docker-init` (measured on 20.10; `/sbin/docker-init` on other builds), Podman's
/// catatonit at `/run/podman-init`. A single read-only executable exposes nothing of the host's
/// data, so it is not an extra mount; anything writable there still is.
const ENGINE_INITS: [&str; 3] = ["/bin/docker-init", "/sbin/docker-init", "/run/podman-init"];

fn engine_init_mount(m: &MountLine) -> bool {
    m.read_only && ENGINE_INITS.contains(&m.mount_point.as_str())
}

/// Splits the engine's init off an argv: `[/sbin/docker-init, --, cmd..]` (Docker's tini) and
/// `[/run/podman-init, --, cmd..]` (Podman's catatonit) become `(Some(init), [cmd..])`; any
/// other argv is `(None, argv)`. Docker's inspect shows the command without its init, Podman's
/// with it, and `/proc/1/cmdline` always with it.
fn engine_init_split(argv: &[String]) -> (Option<&str>, &[String]) {
    match argv {
        [init, dashes, rest @ ..]
            if dashes == "--"
                && ENGINE_INITS
                    .iter()
                    .any(|p| p.rsplit('/').next() == init.rsplit('/').next()) =>
        {
            (Some(init.as_str()), rest)
        }
        _ => (None, argv),
    }
}

fn caps_of(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap_or(u64::MAX)
}

/// Capability bit numbers of the names `capAdd` may hold.
pub fn cap_bit(name: &str) -> Option<u32> {
    const CAPS: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let n = crate::spec::capability(name);
    CAPS.iter().position(|c| *c == n).map(|p| p as u32)
}

/// Whether a socket name mentions an engine (Docker, containerd, Podman, CRI-O, BuildKit).
fn engine_word(name: &str) -> bool {
    [
        "docker",
        "containerd",
        "podman",
        "crio",
        "libpod",
        "buildkit",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// The listening unix sockets of the sandbox's network namespace (`/proc/net/unix` lines with
/// `__SO_ACCEPTCON`), by path or `@abstract` name.
pub fn unix_listeners(facts: &Facts) -> Vec<String> {
    let mut out: Vec<String> = facts
        .unix
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            (flags & 0x0001_0000 != 0).then(|| f.get(7).map(|p| p.to_string()))?
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every unix socket the host should ask: the socket files found in the sandbox's
/// filesystem, and the abstract listeners of its network namespace. A listener's path in
/// `/proc/net/unix` is not asked by itself: it names a file in the namespace of whoever bound
/// it (with the host's network, any host process), reachable from the sandbox only if `find`
/// saw it there.
pub fn sockets_to_ask(facts: &Facts) -> Vec<String> {
    let mut out: Vec<String> = facts.found_sockets.clone();
    out.extend(
        unix_listeners(facts)
            .into_iter()
            .filter(|p| p.starts_with('@')),
    );
    out.sort();
    out.dedup();
    out
}

/// `fs.masked-paths`: the engine's masked paths hide what they hide, its read-only paths are
/// mounted read-only (and a write-open fails).
fn masked_paths(facts: &Facts) -> ProbeResult {
    let probe = "fs.masked-paths";
    if facts.masked.is_empty() || facts.mounts.is_empty() {
        return r(
            probe,
            Outcome::Inconclusive,
            "the masked paths were not examined (the script was cut short?)",
        );
    }
    let mut bad = Vec::new();
    for (p, seen) in &facts.masked {
        match seen.as_str() {
            "absent" | "null" | "empty" | "unreadable" => {}
            "listed" => bad.push(format!("{p} lists its content")),
            _ => bad.push(format!("{p} is readable")),
        }
    }
    // The mount a path is on: the deepest mount point above it (the last one mounted there).
    let covering = |p: &str| {
        facts
            .mounts
            .iter()
            .filter(|m| {
                m.mount_point == "/"
                    || p == m.mount_point
                    || p.starts_with(&format!("{}/", m.mount_point))
            })
            .max_by_key(|m| m.mount_point.len())
    };
    for (p, state, err) in &facts.readonly {
        if state == "absent" {
            continue;
        }
        if state == "ok" {
            bad.push(format!("{p} opens for writing"));
            continue;
        }
        match covering(p) {
            Some(m) if m.read_only => {}
            Some(m) => bad.push(format!(
                "{p} is on a writable mount ({}){}",
                m.mount_point,
                if state == "err" && !err.is_empty() {
                    format!(", its write failed only with: {err}")
                } else {
                    String::new()
                }
            )),
            None => bad.push(format!("{p} is on no mount seen")),
        }
    }
    if bad.is_empty() {
        r(
            probe,
            Outcome::Pass,
            format!(
                "{} masked paths hidden, {} read-only paths read-only",
                facts.masked.len(),
                facts.readonly.len()
            ),
        )
    } else {
        r(probe, Outcome::Fail, list(&bad))
    }
}

/// Every in-sandbox probe, decided from the facts. `expect.binds` is `None` for adopted
/// containers: the bind probes are then not run at all.
pub fn evaluate(expect: &Expect, ctx: &Context, facts: &Facts) -> Vec<ProbeResult> {
    let mut out = Vec::new();

    // secrets.file-absent: exact paths inside, names anywhere inside, names in the archive.
    {
        let mut hits: Vec<String> = facts.exists_secret.clone();
        hits.extend(
            facts
                .found_names
                .iter()
                .filter(|p| {
                    let base = p.rsplit('/').next().unwrap_or("");
                    ctx.secret_names.iter().any(|n| n == base)
                })
                .cloned(),
        );
        hits.extend(ctx.archive_name_hits.iter().cloned());
        hits.sort();
        hits.dedup();
        out.push(if !hits.is_empty() {
            r(
                "secrets.file-absent",
                Outcome::Fail,
                format!("secrets file reachable at {}", list(&hits)),
            )
        } else if !facts.find_done {
            r(
                "secrets.file-absent",
                Outcome::Inconclusive,
                "`find` is missing in the image; only exact paths and the archive were checked",
            )
        } else {
            r(
                "secrets.file-absent",
                Outcome::Pass,
                format!(
                    "no {} found inside or in the exported filesystem",
                    ctx.secret_names.join(" / ")
                ),
            )
        });
    }

    out.push(if facts.exists_deny.is_empty() {
        r(
            "secrets.deny-absent",
            Outcome::Pass,
            "no deny path of any bind set is reachable",
        )
    } else {
        r(
            "secrets.deny-absent",
            Outcome::Fail,
            format!("denied paths reachable: {}", list(&facts.exists_deny)),
        )
    });

    if let Some(binds) = &expect.binds {
        let mounted = |t: &str| facts.mounts.iter().rev().find(|m| m.mount_point == t);
        for (probe, want_ro) in [("fs.ro-binds", true), ("fs.rw-binds", false)] {
            let targets: Vec<&String> = binds
                .iter()
                .filter(|b| b.read_only == want_ro)
                .map(|b| &b.target)
                .collect();
            let mut bad = Vec::new();
            for t in &targets {
                let w = facts
                    .writes
                    .iter()
                    .find(|(k, p, _)| k == if want_ro { "ro" } else { "rw" } && p == *t);
                let m = mounted(t);
                let problem = match (w.map(|w| &w.2), m) {
                    (None, _) => Some(format!("{t}: not probed")),
                    (Some(WriteResult::Missing), _) | (_, None) => {
                        Some(format!("{t}: not mounted"))
                    }
                    (Some(WriteResult::Ok), _) if want_ro => Some(format!("{t}: writable")),
                    (Some(WriteResult::Err(e)), Some(m)) if want_ro => {
                        if e.contains("Read-only") && m.read_only {
                            None
                        } else {
                            Some(format!("{t}: write failed but not read-only ({e})"))
                        }
                    }
                    (Some(WriteResult::Err(e)), _) => Some(format!("{t}: write failed ({e})")),
                    (Some(WriteResult::Ok), Some(m)) if m.read_only => {
                        Some(format!("{t}: mounted read-only"))
                    }
                    (Some(WriteResult::Ok), Some(_)) => None,
                };
                bad.extend(problem);
            }
            let what = if want_ro { "read-only" } else { "writable" };
            out.push(if targets.is_empty() {
                r(probe, Outcome::Pass, format!("no {what} binds declared"))
            } else if bad.is_empty() {
                r(
                    probe,
                    Outcome::Pass,
                    format!("{} bind(s) {what} as declared", targets.len()),
                )
            } else if bad.iter().all(|b| b.ends_with("not probed")) {
                r(probe, Outcome::Inconclusive, list(&bad))
            } else {
                r(probe, Outcome::Fail, list(&bad))
            });
        }
    }

    // fs.root-readonly
    out.push(if !expect.read_only_root {
        r(
            "fs.root-readonly",
            Outcome::Pass,
            "not required (readOnlyRoot: false)",
        )
    } else {
        let root_ro = facts
            .mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == "/")
            .map(|m| m.read_only);
        let writes: Vec<&(String, String, WriteResult)> =
            facts.writes.iter().filter(|w| w.0 == "root").collect();
        let writable: Vec<String> = writes
            .iter()
            .filter(|w| {
                !matches!(&w.2, WriteResult::Err(e) if e.contains("Read-only"))
                    && !matches!(w.2, WriteResult::Missing)
            })
            .map(|w| w.1.clone())
            .collect();
        if writes.is_empty() || root_ro.is_none() {
            r(
                "fs.root-readonly",
                Outcome::Inconclusive,
                "the write probe did not run",
            )
        } else if root_ro == Some(false) || !writable.is_empty() {
            r(
                "fs.root-readonly",
                Outcome::Fail,
                format!(
                    "root filesystem is not read-only{}",
                    if writable.is_empty() {
                        String::new()
                    } else {
                        format!(" (no EROFS writing to {})", writable.join(", "))
                    }
                ),
            )
        } else {
            r(
                "fs.root-readonly",
                Outcome::Pass,
                "writes to / and /etc fail with EROFS",
            )
        }
    });

    if let Some(binds) = &expect.binds {
        let declared: BTreeSet<&str> = binds
            .iter()
            .map(|b| b.target.as_str())
            .chain(expect.tmpfs.iter().map(String::as_str))
            .collect();
        let extra: Vec<String> = facts
            .mounts
            .iter()
            .filter(|m| {
                !standard_mount(&m.mount_point)
                    && !declared.contains(m.mount_point.as_str())
                    && !shadow_tmpfs(m)
                    && !engine_init_mount(m)
            })
            .map(|m| format!("{} ({} {})", m.mount_point, m.fstype, m.root))
            .collect();
        out.push(if facts.mounts.is_empty() {
            r(
                "fs.no-extra-mounts",
                Outcome::Inconclusive,
                "/proc/self/mountinfo could not be read",
            )
        } else if extra.is_empty() {
            r(
                "fs.no-extra-mounts",
                Outcome::Pass,
                format!("{} mounts, all declared or standard", facts.mounts.len()),
            )
        } else {
            r(
                "fs.no-extra-mounts",
                Outcome::Fail,
                format!("undeclared mounts: {}", list(&extra)),
            )
        });
    }

    out.push(masked_paths(facts));

    // engine.no-socket
    {
        let engine_name = |p: &str| {
            let base = p.rsplit('/').next().unwrap_or(p);
            ENGINE_SOCKET_NAMES.contains(&base)
        };
        let mut bad: Vec<String> = facts
            .found_names
            .iter()
            .chain(facts.found_sockets.iter())
            .filter(|p| engine_name(p))
            .map(|p| format!("{p} (by name)"))
            .collect();
        let mount_points: BTreeSet<&str> = facts
            .mounts
            .iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        bad.extend(
            facts
                .found_sockets
                .iter()
                .filter(|p| mount_points.contains(p.as_str()) && !engine_name(p))
                .map(|p| format!("{p} (a socket bound in)")),
        );
        bad.extend(
            facts
                .mounts
                .iter()
                .filter(|m| engine_name(&m.root) || engine_name(&m.mount_point))
                .map(|m| format!("{} (bound from {})", m.mount_point, m.root)),
        );
        // Abstract sockets are reachable from any process of the network namespace, without
        // a file (containerd-shim, CVE-2020-15257): one named like an engine's fails as such.
        bad.extend(
            unix_listeners(facts)
                .into_iter()
                .filter(|p| p.starts_with('@') && engine_word(p))
                .map(|p| format!("{p} (abstract socket)")),
        );
        // Whatever its name: a unix socket that answers the engine API (asked from the host).
        let mut unasked = Vec::new();
        for (path, answer) in &ctx.sockets {
            match answer {
                Answer::Engine => {
                    bad.push(format!("{path} (unix socket answering the engine API)"))
                }
                Answer::NotEngine => {}
                Answer::Unasked(why) => unasked.push(format!("{path}: {why}")),
            }
        }
        // And a TCP endpoint that does (asked from inside).
        bad.extend(
            facts
                .tcp_asks
                .iter()
                .filter(|(_, _, reply)| super::endpoint::answers_engine_api(reply))
                .map(|(host, port, _)| format!("{host}:{port} (TCP, answering the engine API)")),
        );
        bad.sort();
        bad.dedup();
        let tcp = facts.tcp_asks.len();
        out.push(if !bad.is_empty() {
            r("engine.no-socket", Outcome::Fail, list(&bad))
        } else if !facts.find_done {
            r(
                "engine.no-socket",
                Outcome::Inconclusive,
                "`find` is missing; sockets were not searched by name or type",
            )
        } else if !facts.asks_done || facts.asks_cut {
            r(
                "engine.no-socket",
                Outcome::Inconclusive,
                if facts.asks_cut {
                    format!("more than {MAX_TCP_ASKS} TCP endpoints; the rest were not asked")
                } else {
                    "`nc` or `od` is missing; TCP endpoints were not asked".to_string()
                },
            )
        } else if !unasked.is_empty() {
            r(
                "engine.no-socket",
                Outcome::Inconclusive,
                format!("unix sockets that could not be asked: {}", list(&unasked)),
            )
        } else {
            r(
                "engine.no-socket",
                Outcome::Pass,
                format!(
                    "no engine socket by name, type, mount or abstract address; {} unix socket(s) \
                     and {tcp} TCP endpoint(s) asked, none answers the engine API",
                    ctx.sockets.len()
                ),
            )
        });
    }

    // proc.*
    let status = facts.status.get("self");
    let field = |k: &str| status.and_then(|s| s.get(k)).map(String::as_str);
    {
        let allowed: u64 = expect
            .cap_add
            .iter()
            .filter_map(|c| cap_bit(c))
            .fold(0, |m, b| m | (1 << b));
        let mut bad = Vec::new();
        let mut missing = false;
        for k in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
            match field(k) {
                None => missing = true,
                Some(v) if caps_of(v) & !allowed != 0 => {
                    bad.push(format!("{k}={}", v.trim_start_matches('0')))
                }
                Some(_) => {}
            }
        }
        out.push(if missing {
            r(
                "proc.caps-empty",
                Outcome::Inconclusive,
                "/proc/self/status lacks capability lines",
            )
        } else if bad.is_empty() {
            r(
                "proc.caps-empty",
                Outcome::Pass,
                if expect.cap_add.is_empty() {
                    "CapEff, CapPrm, CapAmb and CapBnd are zero".to_string()
                } else {
                    format!("capabilities within capAdd ({})", expect.cap_add.join(","))
                },
            )
        } else {
            r(
                "proc.caps-empty",
                Outcome::Fail,
                format!("capabilities beyond capAdd: {}", bad.join(" ")),
            )
        });
    }
    let tri = |probe: &str, key: &str, want: &str, ok: &str, bad: &str| match field(key) {
        None => r(
            probe,
            Outcome::Inconclusive,
            format!("/proc/self/status has no {key} line"),
        ),
        Some(v) if v == want => r(probe, Outcome::Pass, ok.to_string()),
        Some(v) => r(probe, Outcome::Fail, format!("{key}: {v} ({bad})")),
    };
    out.push(if expect.no_new_privileges {
        tri(
            "proc.no-new-privs",
            "NoNewPrivs",
            "1",
            "NoNewPrivs: 1",
            "setuid binaries can raise privileges",
        )
    } else {
        r(
            "proc.no-new-privs",
            Outcome::Pass,
            "not required (noNewPrivileges: false)",
        )
    });
    out.push(tri(
        "proc.seccomp-filter",
        "Seccomp",
        "2",
        "Seccomp: 2 (filter mode)",
        "no seccomp filter",
    ));
    {
        let uid_of = |who: &str| {
            facts
                .status
                .get(who)
                .and_then(|s| s.get("Uid"))
                .map(|u| u.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        };
        let (me, one) = (uid_of("self"), uid_of("1"));
        out.push(match (&me, expect.allow_root) {
            (_, true) => r("proc.non-root", Outcome::Pass, "root allowed (allowRoot)"),
            (None, _) => r(
                "proc.non-root",
                Outcome::Inconclusive,
                "/proc/self/status has no Uid line",
            ),
            (Some(me), false) => {
                let root = me.iter().chain(one.iter().flatten()).any(|u| u == "0");
                if root {
                    r(
                        "proc.non-root",
                        Outcome::Fail,
                        format!(
                            "runs as root (exec uid {}, pid 1 uid {})",
                            me.join(" "),
                            one.map(|o| o.join(" ")).unwrap_or_else(|| "?".into())
                        ),
                    )
                } else {
                    r(
                        "proc.non-root",
                        Outcome::Pass,
                        format!("uid {}", me.first().cloned().unwrap_or_default()),
                    )
                }
            }
        });
    }
    out.push(match &facts.pid1_cmdline {
        None => r(
            "proc.pid-namespace",
            Outcome::Inconclusive,
            "/proc/1/cmdline could not be read (`od` missing?)",
        ),
        Some(raw) => {
            let argv: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
            let (init, run) = engine_init_split(&argv);
            let (_, want) = engine_init_split(&ctx.command);
            let same = !run.is_empty()
                && run.len() == want.len()
                && run.iter().zip(want).enumerate().all(|(i, (a, b))| {
                    if i == 0 {
                        base(a) == base(b)
                    } else {
                        a == b
                    }
                });
            if same {
                r(
                    "proc.pid-namespace",
                    Outcome::Pass,
                    match init {
                        Some(init) => format!(
                            "pid 1 is the engine's init ({}) running the sandbox's command ({})",
                            base(init),
                            base(&run[0])
                        ),
                        None => format!("pid 1 is the sandbox's command ({})", base(&run[0])),
                    },
                )
            } else {
                // Only the program name: arguments of a foreign pid 1 are none of our business.
                r(
                    "proc.pid-namespace",
                    Outcome::Fail,
                    format!(
                        "pid 1 is {:?}, not the sandbox's command {:?}",
                        argv.first().map(|a| base(a)).unwrap_or_default(),
                        ctx.command.first().map(|a| base(a)).unwrap_or_default()
                    ),
                )
            }
        }
    });

    out.push(super::sysprobe::decide(
        &expect.syscalls,
        &expect.syscalls_unobservable,
        facts.sysprobe.as_ref(),
    ));

    out.extend(limits(expect, ctx, facts));

    // net.none
    {
        let mut bad = Vec::new();
        if expect.network_none {
            let others: Vec<String> = facts
                .ifaces
                .iter()
                .filter(|i| *i != "lo")
                .cloned()
                .collect();
            if !others.is_empty() {
                bad.push(format!("interfaces besides lo: {}", list(&others)));
            }
        }
        if facts.metadata_open == Some(true) {
            bad.push("169.254.169.254:80 is reachable".into());
        }
        out.push(if !bad.is_empty() {
            r("net.none", Outcome::Fail, bad.join("; "))
        } else if facts.metadata_open.is_none() || facts.ifaces.is_empty() {
            r(
                "net.none",
                Outcome::Inconclusive,
                "`nc` missing or /proc/net/dev unreadable",
            )
        } else if expect.network_none {
            r(
                "net.none",
                Outcome::Pass,
                "only lo; 169.254.169.254:80 unreachable",
            )
        } else {
            r(
                "net.none",
                Outcome::Pass,
                "169.254.169.254:80 unreachable (network is not none)",
            )
        });
    }
    if !facts.complete {
        for p in &mut out {
            if p.outcome == Outcome::Pass {
                p.outcome = Outcome::Inconclusive;
                p.detail = format!("the probe script was cut short; {}", p.detail);
            }
        }
    }
    out
}

fn cg<'a>(facts: &'a Facts, paths: &[&str]) -> Option<(&'a str, &'a str)> {
    paths
        .iter()
        .find_map(|p| facts.cgroup.get_key_value(*p))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

fn show(v: Option<i64>) -> String {
    v.map(|v| v.to_string())
        .unwrap_or_else(|| "unlimited".into())
}

fn limits(expect: &Expect, ctx: &Context, facts: &Facts) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    // memory: the kernel rounds down to the page size.
    let want = expect.memory.map(|m| m - m % 4096);
    out.push(
        match cg(
            facts,
            &[
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory.max",
            ],
        ) {
            None => r(
                "limits.memory",
                Outcome::Inconclusive,
                "no memory cgroup file readable inside",
            ),
            Some((f, v)) => match cgroup::limit(v) {
                Some(got) if got == want => r(
                    "limits.memory",
                    Outcome::Pass,
                    format!("{f} = {}", show(got)),
                ),
                Some(got) => r(
                    "limits.memory",
                    Outcome::Fail,
                    format!("{f} = {}, declared {}", show(got), show(want)),
                ),
                None => r(
                    "limits.memory",
                    Outcome::Inconclusive,
                    format!("{f} unreadable value {v:?}"),
                ),
            },
        },
    );
    out.push(
        match cg(
            facts,
            &["/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"],
        ) {
            None => r(
                "limits.pids",
                Outcome::Inconclusive,
                "no pids cgroup file readable inside",
            ),
            Some((f, v)) => match cgroup::limit(v) {
                Some(got) if got == expect.pids => {
                    r("limits.pids", Outcome::Pass, format!("{f} = {}", show(got)))
                }
                Some(got) => r(
                    "limits.pids",
                    Outcome::Fail,
                    format!("{f} = {}, declared {}", show(got), show(expect.pids)),
                ),
                None => r(
                    "limits.pids",
                    Outcome::Inconclusive,
                    format!("{f} unreadable value {v:?}"),
                ),
            },
        },
    );
    // cpu: quota / period.
    let v1 = cg(
        facts,
        &[
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
        ],
    )
    .zip(cg(
        facts,
        &[
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us",
        ],
    ))
    .map(|((f, q), (_, p))| (f, cgroup::cfs_quota(q, p)));
    let v2 = cg(facts, &["/sys/fs/cgroup/cpu.max"]).map(|(f, v)| (f, cgroup::cpu_max(v)));
    out.push(match v1.or(v2) {
        None => r(
            "limits.cpu",
            Outcome::Inconclusive,
            "no cpu cgroup file readable inside",
        ),
        Some((f, quota)) => {
            // A value that is no quota reads as no limit, which fails a declared one.
            let got = quota.flatten().map(cgroup::CpuQuota::cpus);
            let ok = match (got, ctx.cpus) {
                (None, None) => true,
                (Some(g), Some(w)) => (g - w).abs() <= 0.01 * w.max(0.01),
                _ => false,
            };
            let fmt = |c: Option<f64>| {
                c.map(|c| format!("{c} cpus"))
                    .unwrap_or_else(|| "unlimited".into())
            };
            r(
                "limits.cpu",
                if ok { Outcome::Pass } else { Outcome::Fail },
                if ok {
                    format!("{f}: {}", fmt(got))
                } else {
                    format!("{f}: {}, declared {}", fmt(got), fmt(ctx.cpus))
                },
            )
        }
    });
    out
}

#[cfg(test)]
mod tests;
