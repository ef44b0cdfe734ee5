//! The `limits.*` probes: the memory, pids and cpu limits the sandbox's own cgroup shows
//! inside (v1 per-controller files or the v2 unified ones) are the declared ones. The values
//! are parsed by `crate::cgroup`, which knows how each version spells "unlimited".

use super::super::{Expect, Outcome, ProbeResult};
use super::{r, Context, Facts};
use crate::cgroup;

/// `limits.memory`, `limits.pids` and `limits.cpu`: the cgroup files inside hold the declared
/// limits (memory rounded down to the page size, cpus clamped to the engine host's count).
pub(super) fn probes(expect: &Expect, ctx: &Context, facts: &Facts) -> Vec<ProbeResult> {
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
