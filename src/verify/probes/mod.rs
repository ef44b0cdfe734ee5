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
//!
//! This file holds the script and [`evaluate`], which runs the probe families in catalogue
//! order: `facts` parses the output; `secrets`, `fs`, `engine`, `process`, `limits` and `net`
//! each decide their `<family>.*` probes (the syscall probe is `verify::sysprobe`'s).

mod engine;
mod facts;
mod fs;
mod limits;
mod net;
mod process;
mod secrets;

use super::endpoint::Answer;
use super::{Expect, Outcome, ProbeResult};

pub use self::engine::{sockets_to_ask, unix_listeners};
pub use self::facts::{
    parse_facts, parse_mountinfo, split_output, DirectTry, EgressAsk, Facts, MountLine, Output,
    WriteResult,
};
pub use self::net::{egress_expect, EgressExpect};

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
    /// What to ask of the egress proxy and to try without it (sandboxes with `egress`).
    pub egress: Option<EgressExpect>,
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

pub use crate::engine::socket::ENGINE_SOCKET_NAMES;

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
{egress}if has find; then
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
        egress = input.egress.as_ref().map(egress_script).unwrap_or_default(),
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

/// The egress part of the script: CONNECT through the proxy on the sandbox's loopback for each
/// destination (its status line is all that is kept), and plain connections without it.
fn egress_script(e: &EgressExpect) -> String {
    let asks = |kind: &str, list: &[(String, u16)]| {
        list.iter()
            .map(|(h, p)| {
                format!(
                    "egress_ask {kind} {}\n",
                    sh_quote(&self::net::authority(h, *p))
                )
            })
            .collect::<String>()
    };
    let mut direct: Vec<(String, u16)> = e.direct.clone();
    direct.push((self::net::METADATA.to_string(), 80));
    let directs = direct
        .iter()
        .map(|(h, p)| format!("direct_try {} {p}\n", sh_quote(h)))
        .collect::<String>();
    format!(
        r#"egress_ask() {{
  if has timeout; then
    l=$(printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$2" "$2" | timeout 8 nc -w 4 127.0.0.1 {port} 2>/dev/null | head -n 1 | tr -d '\r')
  else
    l=$(printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$2" "$2" | nc -w 4 127.0.0.1 {port} 2>/dev/null | head -n 1 | tr -d '\r')
  fi
  emit EGRESS "$1" "$2" "$(clean "$l")"
}}
direct_try() {{
  if nc -w 2 "$1" "$2" </dev/null >/dev/null 2>&1; then emit DIRECT "$1" "$2" open; else emit DIRECT "$1" "$2" closed; fi
}}
if has nc; then
{asks}{directs}emit EGRESSDONE
fi
"#,
        port = crate::egress::netns::PROXY_PORT,
        asks = asks("allowed", &e.allowed) + &asks("refused", &e.refused),
    )
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

/// The engine's init binary (`init: true`), bind-mounted read-only over one path: Docker's tini
/// at `/bin/docker-init` (measured on 20.10; `/sbin/docker-init` on other builds), Podman's
/// catatonit at `/run/podman-init`. A single read-only executable exposes nothing of the host's
/// data, so it is not an extra mount; anything writable there still is.
const ENGINE_INITS: [&str; 3] = ["/bin/docker-init", "/sbin/docker-init", "/run/podman-init"];

/// Every in-sandbox probe, decided from the facts, in catalogue order. `expect.binds` is `None`
/// for adopted containers: the bind probes are then not run at all.
pub fn evaluate(expect: &Expect, ctx: &Context, facts: &Facts) -> Vec<ProbeResult> {
    let mut out = secrets::probes(ctx, facts);
    out.extend(fs::probes(expect, facts));
    out.push(engine::no_socket(ctx, facts));
    out.extend(process::probes(expect, ctx, facts));
    out.push(super::sysprobe::decide(
        &expect.syscalls,
        &expect.syscalls_unobservable,
        facts.sysprobe.as_ref(),
    ));
    out.extend(limits::probes(expect, ctx, facts));
    out.push(net::none(expect, facts));
    if let Some(egress) = &expect.egress {
        out.push(net::egress_allowed(egress, facts));
        out.push(net::egress_denied(egress, facts));
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

#[cfg(test)]
mod tests;
