//! cgroup limit values as the kernel prints them, for v1 and v2, and what "unlimited" looks like
//! in each. Pure: the text of one file in, a typed value out. Every reader of a limit calls
//! these: the Podman adapter reading the limits in force (`engine::podman::live_limits`), the
//! limit diagnostics (`limits::CgroupUsage::parse`) and verify's in-sandbox probes.
//!
//! This module reads no file and decides nothing about a container; the readers around it own
//! where the files are (host cgroup fs, an exec inside the sandbox) and what a value means to
//! them (Docker's `Memory: 0` is "no limit", so the engine adapter drops a zero).
//!
//! The spellings of "unlimited", as the kernel writes them:
//!
//! | file | v1 | v2 |
//! | --- | --- | --- |
//! | memory | `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`: the page counter's maximum (2^63 rounded down to the page size, `9223372036854771712` on 4 KiB pages) | `memory.max`, `memory.swap.max`: `max` |
//! | pids | `pids.max`: `max` | `pids.max`: `max` |
//! | cpu | `cpu.cfs_quota_us`: `-1` (beside `cpu.cfs_period_us`) | `cpu.max`: `max <period>` |

/// Values at or above this are v1's "no limit" for a page counter: its maximum is `i64::MAX`
/// rounded down to the page size, whatever the page size.
pub const V1_UNLIMITED: i64 = 1 << 62;

/// A limit file (`memory.max`, `memory.swap.max`, `pids.max`, `memory.limit_in_bytes`,
/// `memory.memsw.limit_in_bytes`): `Some(None)` when unlimited (`max`, or v1's page-counter
/// maximum), `Some(Some(n))` for a limit of `n`, `None` when the text is no limit value at all.
pub fn limit(text: &str) -> Option<Option<i64>> {
    let text = text.trim();
    if text == "max" {
        return Some(None);
    }
    let n: i64 = text.parse().ok()?;
    Some((n < V1_UNLIMITED).then_some(n))
}

/// A CFS bandwidth limit: `quota_us` of CPU time in every `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: i64,
    /// Above zero.
    pub period_us: i64,
}

impl CpuQuota {
    /// The limit in CPUs (`50000` of `100000` is 0.5).
    pub fn cpus(self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }

    /// The limit in the engines' `NanoCpus` (CPUs x 10^9), rounded down.
    pub fn nano_cpus(self) -> i64 {
        self.quota_us * 1_000_000_000 / self.period_us
    }
}

/// The quota and period as written: a quota of `max` (v2), `-1` (v1) or anything below one
/// microsecond is unlimited; otherwise both must be numbers, the period above zero.
fn quota(quota: &str, period: Option<&str>) -> Option<Option<CpuQuota>> {
    let quota = quota.trim();
    if quota == "max" {
        return Some(None);
    }
    let quota_us: i64 = quota.parse().ok()?;
    let period_us: i64 = period?.trim().parse().ok().filter(|p| *p > 0)?;
    Some((quota_us > 0).then_some(CpuQuota {
        quota_us,
        period_us,
    }))
}

/// v2 `cpu.max`: `<quota> <period>`, the quota `max` when unlimited. `Some(None)`: unlimited;
/// `None`: not a `cpu.max` value.
pub fn cpu_max(text: &str) -> Option<Option<CpuQuota>> {
    let mut fields = text.split_whitespace();
    quota(fields.next()?, fields.next())
}

/// v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`, the quota `-1` when unlimited. `Some(None)`:
/// unlimited; `None`: not a quota and period.
pub fn cfs_quota(quota_text: &str, period_text: &str) -> Option<Option<CpuQuota>> {
    quota(quota_text, Some(period_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE_COUNTER_MAX: &str = "9223372036854771712";

    #[test]
    fn limit_files_read_as_a_limit_unlimited_or_nothing() {
        for (text, want) in [
            // v2 memory.max / memory.swap.max / pids.max, v1 pids.max
            ("67108864\n", Some(Some(64 << 20))),
            ("max\n", Some(None)),
            ("0", Some(Some(0))),
            ("64", Some(Some(64))),
            // v1 memory.limit_in_bytes and memory.memsw.limit_in_bytes: the page counter's
            // maximum on 4 KiB and 64 KiB pages
            (PAGE_COUNTER_MAX, Some(None)),
            ("9223372036854710272", Some(None)),
            ("4611686018427387903", Some(Some((1 << 62) - 1))),
            // not a limit
            ("", None),
            ("unlimited", None),
            ("1.5", None),
        ] {
            assert_eq!(limit(text), want, "{text:?}");
        }
    }

    #[test]
    fn cpu_max_reads_quota_and_period_or_unlimited() {
        let q = |quota_us, period_us| {
            Some(Some(CpuQuota {
                quota_us,
                period_us,
            }))
        };
        for (text, want) in [
            ("50000 100000\n", q(50000, 100000)),
            ("250000 100000", q(250000, 100000)),
            ("max 100000\n", Some(None)),
            ("max", Some(None)),
            ("50000 0", None),
            ("50000", None),
            ("", None),
            ("half 100000", None),
        ] {
            assert_eq!(cpu_max(text), want, "{text:?}");
        }
    }

    #[test]
    fn v1_cfs_quota_reads_minus_one_as_unlimited() {
        let q = |quota_us, period_us| {
            Some(Some(CpuQuota {
                quota_us,
                period_us,
            }))
        };
        for (quota, period, want) in [
            ("25000\n", "100000\n", q(25000, 100000)),
            ("-1\n", "100000\n", Some(None)),
            ("max", "100000", Some(None)),
            ("0", "100000", Some(None)),
            ("25000", "0", None),
            ("25000", "", None),
            ("", "100000", None),
        ] {
            assert_eq!(cfs_quota(quota, period), want, "{quota:?} {period:?}");
        }
    }

    #[test]
    fn a_quota_converts_to_cpus_and_nano_cpus() {
        for (quota_us, period_us, cpus, nano) in [
            (50000, 100000, 0.5, 500_000_000),
            (25000, 100000, 0.25, 250_000_000),
            (400000, 100000, 4.0, 4_000_000_000),
            (1000, 3000, 1.0 / 3.0, 333_333_333),
        ] {
            let c = CpuQuota {
                quota_us,
                period_us,
            };
            assert_eq!(c.cpus(), cpus);
            assert_eq!(c.nano_cpus(), nano);
        }
    }
}
