//! The `proc.*` probes, from `/proc/self/status` and `/proc/1/cmdline` as a process inside
//! sees them: no capabilities beyond `capAdd`, `no_new_privs` set, a seccomp filter in force,
//! no root user (unless `allowRoot`), and pid 1 the sandbox's own command (its own pid
//! namespace).

use super::super::{Expect, Outcome, ProbeResult};
use super::{r, Context, Facts, ENGINE_INITS};

/// The process probes in catalogue order.
pub(super) fn probes(expect: &Expect, ctx: &Context, facts: &Facts) -> Vec<ProbeResult> {
    vec![
        caps_empty(expect, facts),
        no_new_privs(expect, facts),
        seccomp_filter(facts),
        non_root(expect, facts),
        pid_namespace(ctx, facts),
    ]
}

/// A field of the exec'd process's `/proc/self/status`.
fn field<'a>(facts: &'a Facts, key: &str) -> Option<&'a str> {
    facts
        .status
        .get("self")
        .and_then(|s| s.get(key))
        .map(String::as_str)
}

/// A probe passing when the status field `key` reads `want`.
fn tri(facts: &Facts, probe: &str, key: &str, want: &str, ok: &str, bad: &str) -> ProbeResult {
    match field(facts, key) {
        None => r(
            probe,
            Outcome::Inconclusive,
            format!("/proc/self/status has no {key} line"),
        ),
        Some(v) if v == want => r(probe, Outcome::Pass, ok.to_string()),
        Some(v) => r(probe, Outcome::Fail, format!("{key}: {v} ({bad})")),
    }
}

/// `proc.caps-empty`: no capability beyond `capAdd` in the effective, permitted, ambient or
/// bounding set.
fn caps_empty(expect: &Expect, facts: &Facts) -> ProbeResult {
    let allowed: u64 = expect
        .cap_add
        .iter()
        .filter_map(|c| cap_bit(c))
        .fold(0, |m, b| m | (1 << b));
    let mut bad = Vec::new();
    let mut missing = false;
    for k in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
        match field(facts, k) {
            None => missing = true,
            Some(v) if caps_of(v) & !allowed != 0 => {
                bad.push(format!("{k}={}", v.trim_start_matches('0')))
            }
            Some(_) => {}
        }
    }
    if missing {
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
    }
}

/// `proc.no-new-privs`: `NoNewPrivs: 1` where the manifest asks for it.
fn no_new_privs(expect: &Expect, facts: &Facts) -> ProbeResult {
    if expect.no_new_privileges {
        tri(
            facts,
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
    }
}

/// `proc.seccomp-filter`: `Seccomp: 2`, a filter in force.
fn seccomp_filter(facts: &Facts) -> ProbeResult {
    tri(
        facts,
        "proc.seccomp-filter",
        "Seccomp",
        "2",
        "Seccomp: 2 (filter mode)",
        "no seccomp filter",
    )
}

/// `proc.non-root`: neither the exec'd process nor pid 1 runs as uid 0, unless `allowRoot`.
fn non_root(expect: &Expect, facts: &Facts) -> ProbeResult {
    let uid_of = |who: &str| {
        facts
            .status
            .get(who)
            .and_then(|s| s.get("Uid"))
            .map(|u| u.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    };
    let (me, one) = (uid_of("self"), uid_of("1"));
    match (&me, expect.allow_root) {
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
    }
}

/// `proc.pid-namespace`: pid 1 is the sandbox's command (under the engine's init, if any).
fn pid_namespace(ctx: &Context, facts: &Facts) -> ProbeResult {
    match &facts.pid1_cmdline {
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
    }
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
fn cap_bit(name: &str) -> Option<u32> {
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
