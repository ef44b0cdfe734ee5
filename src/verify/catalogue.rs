//! The probe catalogue as reports describe it: for each probe id, the sentence that says when
//! it passes (verify.md's catalogue) and the CIS Docker Benchmark recommendations it covers.
//! Pure data; it decides nothing (the probes live in `probes` and `inspect`).
//!
//! CIS ids follow the CIS Docker Benchmark v1.6.0, section 5 (Container Runtime), whose
//! numbering differs from earlier versions (v1.2–v1.5 had no swarm item at 5.1, so e.g.
//! "privileged containers" was 5.4 there and is 5.5 here). Checked against the v1.6.0 audit
//! items published by Tenable (5.5 privileged, 5.6 sensitive host directories) and the
//! section 5 list of docker-bench-security, which implements v1.6.0. Uncertain: the benchmark
//! text itself was not available to check each number against, and third-party mappings
//! disagree (some label v1.5 numbers as v1.6.0); a reader holding the benchmark should
//! confirm 5.29 (PIDs cgroup limit), 5.31 (user namespaces) and 5.32 (Docker socket).

/// The benchmark the `cis` ids refer to.
pub const CIS_BENCHMARK: &str = "CIS Docker Benchmark v1.6.0";

/// What reports say about one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: &'static str,
    /// When the probe passes, as one sentence.
    pub help: &'static str,
    /// CIS Docker Benchmark recommendations (section 5) the probe checks, if any.
    pub cis: &'static [&'static str],
}

const fn e(id: &'static str, help: &'static str, cis: &'static [&'static str]) -> Entry {
    Entry { id, help, cis }
}

/// Every probe and check `verify` reports, in report order.
pub const ENTRIES: &[Entry] = &[
    e(
        "sandbox.running",
        "Passes when the sandbox's container exists and runs, so the probes inside can run.",
        &[],
    ),
    e(
        "secrets.file-absent",
        "Passes when the secrets file path and any file named secrets.env are not found inside the sandbox.",
        &[],
    ),
    e(
        "secrets.deny-absent",
        "Passes when every deny path of every bind set is absent inside the sandbox.",
        &[],
    ),
    e(
        "secrets.env-clean",
        "Passes when no secret value, raw or encoded, is in the container's configured env or in the environ or argv of any process inside.",
        &[],
    ),
    e(
        "secrets.content-scan",
        "Passes when no secret value, raw or encoded, is in any file reachable inside (root filesystem, binds, tmpfs, deleted files still held open; archives, file names and copies included).",
        &[],
    ),
    e(
        "fs.ro-binds",
        "Passes when a write into each read-only bind fails with a read-only error.",
        &[],
    ),
    e(
        "fs.rw-binds",
        "Passes when a write into each read-write bind succeeds (the probe file is removed).",
        &[],
    ),
    e(
        "fs.root-readonly",
        "Passes when a write to / and /etc fails (when readOnlyRoot is declared).",
        &["5.13"],
    ),
    e(
        "fs.no-extra-mounts",
        "Passes when every mount in /proc/self/mountinfo is declared or standard.",
        &[],
    ),
    e(
        "fs.masked-paths",
        "Passes when the engine's masked paths (/proc/kcore, /proc/keys, /proc/timer_list, /sys/firmware, ...) show nothing inside and its read-only paths (/proc/sys, /proc/sysrq-trigger, /proc/irq, /proc/bus, /proc/fs) are mounted read-only.",
        &[],
    ),
    e(
        "engine.no-socket",
        "Passes when no engine endpoint is reachable from inside: no socket named like an engine's or bound in, and no unix socket (file or abstract) or TCP endpoint (every listener, the engine ports on loopback and the gateway) that answers the engine API.",
        &["5.32"],
    ),
    e(
        "proc.caps-empty",
        "Passes when the effective, permitted and ambient capability sets are empty (or exactly the declared capAdd).",
        &["5.4"],
    ),
    e(
        "proc.no-new-privs",
        "Passes when processes inside run with NoNewPrivs set.",
        &["5.26"],
    ),
    e(
        "proc.seccomp-filter",
        "Passes when processes inside run under a seccomp filter (Seccomp: 2).",
        &["5.22"],
    ),
    e(
        "proc.non-root",
        "Passes when the sandbox user is not uid 0 (unless allowRoot is declared).",
        &[],
    ),
    e(
        "proc.pid-namespace",
        "Passes when PID 1 inside is the sandbox's own command, not the host's init.",
        &["5.16"],
    ),
    e(
        "seccomp.denied",
        "Passes when every call of the probe's sample that the policy denies (keyring, bpf, perf, ptrace, io_uring, mount, namespaces, modules, reboot, file handles, ...) is refused inside with the policy's errno, tried by a static probe program that needs nothing from the image.",
        &["5.22"],
    ),
    e(
        "limits.memory",
        "Passes when the memory limit seen in the cgroup inside equals the declared one.",
        &["5.11"],
    ),
    e(
        "limits.pids",
        "Passes when the pids limit seen in the cgroup inside equals the declared one.",
        &["5.29"],
    ),
    e(
        "limits.cpu",
        "Passes when the cpu limit seen in the cgroup inside equals the declared one.",
        &["5.12"],
    ),
    e(
        "net.none",
        "Passes when, with network none, only the loopback interface exists, and the metadata address 169.254.169.254 is unreachable in every mode.",
        &["5.10"],
    ),
    e(
        "net.egress-allowed",
        "Passes when each destination of the egress allow-list that can be probed as written answers through the fortress's proxy on the sandbox's loopback.",
        &[],
    ),
    e(
        "net.egress-denied",
        "Passes when the proxy refuses a name on no list, the metadata address and a private address, and the allowed destinations' own addresses are unreachable without the proxy.",
        &[],
    ),
    e(
        "config.not-privileged",
        "Passes when the engine runs the container unprivileged.",
        &["5.5"],
    ),
    e(
        "config.namespaces",
        "Passes when the container shares no namespace with the host: network, pid, ipc, uts or user.",
        &["5.10", "5.16", "5.17", "5.21", "5.31"],
    ),
    e(
        "config.seccomp-confined",
        "Passes when the seccomp profile the engine holds for the container equals, by content, the one clw-fortress generated for it (for an adopted container: when it is not unconfined).",
        &["5.22"],
    ),
    e(
        "config.apparmor",
        "Passes when the container's AppArmor profile is not unconfined.",
        &["5.2"],
    ),
    e(
        "config.no-sensitive-mounts",
        "Passes when no engine socket, secrets file, deny path or sensitive host directory is among the container's mounts, read-only or not.",
        &["5.6", "5.32"],
    ),
    e(
        "config.limits-set",
        "Passes when the engine holds memory, cpu and pids limits for the container.",
        &["5.11", "5.12", "5.29"],
    ),
    e(
        "config.readonly-root",
        "Passes when the container's root filesystem is read-only (when readOnlyRoot is declared).",
        &["5.13"],
    ),
    e(
        "config.no-new-privileges",
        "Passes when the container runs with no-new-privileges (when noNewPrivileges is declared).",
        &["5.26"],
    ),
    e(
        "config.caps",
        "Passes when all capabilities are dropped and none is added beyond the declared capAdd.",
        &["5.4"],
    ),
    e(
        "config.no-devices",
        "Passes when no host device, device request or device cgroup rule is given to the container.",
        &["5.18"],
    ),
    e(
        "config.propagation",
        "Passes when no mount of the container has shared propagation.",
        &["5.20"],
    ),
];

/// The catalogue entry of a probe id, if it has one.
pub fn entry(id: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.id == id)
}

/// The CIS recommendations a probe checks (none for an unknown id).
pub fn cis(id: &str) -> &'static [&'static str] {
    entry(id).map(|e| e.cis).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_and_check_has_an_entry_and_ids_are_unique() {
        for id in super::super::SANDBOX_PROBES
            .iter()
            .chain(super::super::CONFIG_CHECKS.iter())
        {
            assert!(entry(id).is_some(), "{id} has no catalogue entry");
        }
        let mut ids: Vec<&str> = ENTRIES.iter().map(|e| e.id).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn cis_ids_are_section_5_recommendations_and_help_is_one_sentence() {
        for e in ENTRIES {
            for c in e.cis {
                let n: u32 = c
                    .strip_prefix("5.")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{}: {c} is not a 5.x id", e.id));
                assert!((1..=32).contains(&n), "{}: {c}", e.id);
            }
            assert!(e.help.starts_with("Passes when") && e.help.ends_with('.'));
        }
    }

    #[test]
    fn the_isolation_recommendations_map_to_their_probes() {
        let table = [
            ("config.not-privileged", "5.5"),
            ("config.caps", "5.4"),
            ("config.no-sensitive-mounts", "5.6"),
            ("config.namespaces", "5.10"),
            ("config.limits-set", "5.11"),
            ("config.limits-set", "5.12"),
            ("config.readonly-root", "5.13"),
            ("config.seccomp-confined", "5.22"),
            ("config.no-new-privileges", "5.26"),
            ("config.limits-set", "5.29"),
            ("engine.no-socket", "5.32"),
        ];
        for (id, c) in table {
            assert!(cis(id).contains(&c), "{id} names {c}");
        }
        assert!(cis("secrets.content-scan").is_empty());
        assert!(cis("no.such-probe").is_empty());
    }
}
