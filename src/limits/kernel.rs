//! The kernel's own record of a memory-cgroup OOM kill, read from `/dev/kmsg`: the evidence
//! that a dead container ran into its memory limit when the engine gives none.
//!
//! Measured on Podman 4.3.1 (runc, cgroup v1): a container whose process the OOM killer takes
//! dies with exit 137, `OOMKilled: false` and no `oom` event, and its cgroup is removed at death,
//! so neither the engine nor the counters say "memory" afterwards. The kernel logs every kill,
//! naming the memory cgroup the limit belongs to, and that path holds the container's full id
//! for both engines and both cgroup drivers:
//!
//! ```text
//! 6,6234,10198962942,-;oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/libpod_parent/libpod-<id>,task_memcg=...,task=awk,pid=19269,uid=0
//! ```
//!
//! Each `read(2)` of `/dev/kmsg` returns one record, `<prio>,<seq>,<usec since boot>,<flags>;
//! <text>`; the timestamps are the kernel's monotonic clock, so a kill is matched to a death by
//! age. Reading needs `CAP_SYSLOG` unless `kernel.dmesg_restrict` is 0; without it this
//! evidence is simply absent (never an error).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// How much earlier than the engine's `FinishedAt` a kill may be logged and still explain the
/// death. Measured: the kill is logged a few milliseconds before the engine records the exit.
pub const SLACK: Duration = Duration::from_secs(5);

/// One OOM kill inside a memory cgroup's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKill {
    /// The memory cgroup whose limit was hit (`oom_memcg=`).
    pub memcg: String,
    /// The killed process's name and host pid.
    pub task: String,
    pub pid: i64,
    /// Kernel monotonic time of the record, microseconds since boot.
    pub at_us: u64,
}

/// Parses one `/dev/kmsg` record; `None` unless it is a memory-cgroup OOM kill. Pure.
pub fn parse_record(record: &str) -> Option<OomKill> {
    let (header, text) = record.split_once(';')?;
    let at_us = header.split(',').nth(2)?.parse().ok()?;
    let text = text.lines().next()?;
    let fields = text.strip_prefix("oom-kill:")?;
    let field = |key: &str| {
        fields
            .split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    if field("constraint")? != "CONSTRAINT_MEMCG" {
        return None;
    }
    Some(OomKill {
        memcg: field("oom_memcg")?.to_string(),
        task: field("task").unwrap_or("?").to_string(),
        pid: field("pid").and_then(|p| p.parse().ok()).unwrap_or(0),
        at_us,
    })
}

/// The newest kill inside `container_id`'s memory cgroup no older than `max_age` at `now_us`.
/// A full id only (see [`super::names_container`]). Pure.
pub fn recent_kill_of<'a>(
    kills: &'a [OomKill],
    container_id: &str,
    now_us: u64,
    max_age: Duration,
) -> Option<&'a OomKill> {
    let max_age_us = u64::try_from(max_age.as_micros()).unwrap_or(u64::MAX);
    kills
        .iter()
        .filter(|k| super::names_container(&k.memcg, container_id))
        .filter(|k| now_us.saturating_sub(k.at_us) <= max_age_us)
        .max_by_key(|k| k.at_us)
}

/// Every memory-cgroup OOM kill still in the kernel's ring buffer at `kmsg`.
pub fn read_oom_kills(kmsg: &Path) -> std::io::Result<Vec<OomKill>> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(kmsg)?;
    let mut kills = Vec::new();
    // A record is at most about 1 KiB of text plus its dictionary lines.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => kills.extend(parse_record(&String::from_utf8_lossy(&buf[..n]))),
            // The end of the buffer.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // EPIPE: records were overwritten while reading; the next read goes on.
            Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(kills)
}

/// The kernel's monotonic clock now, in the microseconds `/dev/kmsg` stamps records with.
pub fn monotonic_now_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0) / 1_000
        })
        .unwrap_or(0)
}

/// The kill of `container_id`'s process by its memory limit that explains a death `died_ago`
/// (with a few seconds of slack for the engine's bookkeeping), if the kernel recorded one.
pub fn oom_kill_before_death(
    kmsg: &Path,
    container_id: &str,
    died_ago: Duration,
) -> Option<OomKill> {
    let kills = match read_oom_kills(kmsg) {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!(error = %e, "the kernel log cannot be read; no OOM evidence from it");
            return None;
        }
    };
    recent_kill_of(&kills, container_id, monotonic_now_us(), died_ago + SLACK).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1faead12c0578aadc55c19f51247f1595c25122e03db433e2bb99ebbad9d7fa7";

    fn podman_record(at_us: u64) -> String {
        format!(
            "6,6234,{at_us},-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=libpod-{ID},mems_allowed=0,oom_memcg=/libpod_parent/libpod-{ID},task_memcg=/libpod_parent/libpod-{ID},task=awk,pid=19269,uid=0\n"
        )
    }

    #[test]
    fn a_memcg_oom_kill_record_is_parsed_as_measured_on_podman_and_docker() {
        let k = parse_record(&podman_record(10198962942)).unwrap();
        assert_eq!(k.memcg, format!("/libpod_parent/libpod-{ID}"));
        assert_eq!(
            (k.task.as_str(), k.pid, k.at_us),
            ("awk", 19269, 10198962942)
        );
        let docker = format!(
            "6,5002,8315291439,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={ID},mems_allowed=0,oom_memcg=/docker/{ID},task_memcg=/docker/{ID},task=awk,pid=7,uid=1000\n SUBSYSTEM=x\n"
        );
        assert_eq!(
            parse_record(&docker).unwrap().memcg,
            format!("/docker/{ID}")
        );
    }

    #[test]
    fn other_records_are_not_kills() {
        for r in [
            "4,6150,10198962580,-;awk invoked oom-killer: gfp_mask=0x100cca, order=0\n",
            "3,6235,10198962959,-;Memory cgroup out of memory: Killed process 19269 (awk)\n",
            // A kill by the global OOM killer is not a container's limit.
            "6,1,5,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),oom_memcg=/,task=x,pid=1,uid=0\n",
            "garbage",
        ] {
            assert_eq!(parse_record(r), None, "{r}");
        }
    }

    #[test]
    fn only_a_recent_kill_of_the_same_full_id_counts() {
        let kills = vec![
            parse_record(&podman_record(1_000_000)).unwrap(),
            parse_record(&podman_record(50_000_000)).unwrap(),
        ];
        let now = 52_000_000;
        let k = recent_kill_of(&kills, ID, now, Duration::from_secs(5)).unwrap();
        assert_eq!(k.at_us, 50_000_000, "the newest");
        assert_eq!(
            recent_kill_of(&kills, ID, now, Duration::from_secs(1)),
            None,
            "too old"
        );
        assert_eq!(
            recent_kill_of(&kills, &"b".repeat(64), now, Duration::from_secs(60)),
            None
        );
        assert_eq!(
            recent_kill_of(&kills, &ID[..12], now, Duration::from_secs(60)),
            None
        );
    }

    #[test]
    fn an_unreadable_kernel_log_is_no_evidence_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            oom_kill_before_death(&dir.path().join("kmsg"), ID, Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn a_regular_file_holding_one_record_is_read_too() {
        // A regular file returns everything in one read and the parser takes its first line;
        // the real device (one record per read) is exercised by the agent's OOM test on Podman.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kmsg");
        std::fs::write(&p, podman_record(7)).unwrap();
        assert_eq!(read_oom_kills(&p).unwrap().len(), 1);
    }
}
