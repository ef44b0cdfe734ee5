//! One verify run against one target: inspect it, run the probe script inside, ask every
//! socket it can reach, search what it can read for secret values, and assemble the results
//! in catalogue order.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use crate::engine::{Container, Engine, ExecRequest};
use crate::secrets::SecretMap;

use super::probes::{self, Context, ScriptInput};
use super::scan::{Budget, Finding, Needles};
use super::{
    endpoint, inspect, scan, sysprobe, Expect, Inputs, Outcome, ProbeResult, Target, BIND_PROBES,
    EGRESS_PROBES, SANDBOX_PROBES,
};

/// Where `host` appears inside the container, through each bind mount whose source contains
/// it, plus `host` itself (a container could hold the same path).
fn inside_paths(host: &Path, c: &Container) -> Vec<String> {
    let mut out = vec![host.display().to_string()];
    for m in &c.mounts {
        if m.source.is_empty() || m.destination.is_empty() {
            continue;
        }
        if let Ok(rel) = host.strip_prefix(&m.source) {
            let p = Path::new(&m.destination).join(rel);
            out.push(p.display().to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn tmpfs_mounts(c: &Container) -> Vec<String> {
    let mut out: BTreeSet<String> = c.tmpfs.keys().cloned().collect();
    for m in c.mounts.iter().filter(|m| m.is_tmpfs()) {
        out.insert(m.destination.clone());
    }
    // The engine's own /dev/shm is a writable tmpfs in every container.
    out.insert("/dev/shm".into());
    out.into_iter().collect()
}

/// The most bytes of deleted-but-open files streamed out of one sandbox.
const DELETED_MAX: u64 = 64 << 20;

/// Places the syscall probe may be written to and run from, in order: the tmpfs mounts
/// (`/dev/shm` last: engines mount it `noexec`), then every writable mount (Docker mounts
/// tmpfs `noexec` by default; a bind usually is not). The probe file is removed after its run.
fn exec_dirs(c: &Container, tmpfs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tmpfs
        .iter()
        .filter(|t| t.as_str() != "/dev/shm")
        .cloned()
        .collect();
    out.push("/dev/shm".into());
    for m in &c.mounts {
        if !m.read_only && !m.is_tmpfs() && !out.contains(&m.destination) {
            out.push(m.destination.clone());
        }
    }
    out
}

/// How many unix sockets are asked per sandbox.
const MAX_SOCKET_ASKS: usize = 32;

/// Asks every unix socket the script found (files and listeners) for the engine API, from
/// the host, all at once.
async fn ask_sockets(c: &Container, facts: &probes::Facts) -> Vec<(String, endpoint::Answer)> {
    let paths = probes::sockets_to_ask(facts);
    if paths.is_empty() {
        return Vec::new();
    }
    let proc_root = Path::new("/proc");
    let mounts = c.mounts.clone();
    let pid = endpoint::container_pid(proc_root, c.state.pid.unwrap_or(0), &c.id);
    let root = pid.map(|p| proc_root.join(p.to_string()).join("root"));
    let asks = paths.iter().take(MAX_SOCKET_ASKS).map(|p| {
        let p = p.clone();
        let mounts = mounts.clone();
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            let answer = match (p.strip_prefix('@'), pid) {
                (Some(name), Some(pid)) => endpoint::ask_abstract(proc_root, pid, name.as_bytes()),
                (Some(_), None) => endpoint::Answer::Unasked(
                    "the container's network namespace is not reachable from here".into(),
                ),
                (None, _) => match endpoint::place(&p, &mounts, root.as_deref()) {
                    Some(place) => endpoint::ask_path(&place),
                    None => endpoint::Answer::Unasked(
                        "not on a bind mount, and the container's root is not reachable from \
                         here (a remote engine?)"
                            .into(),
                    ),
                },
            };
            (p, answer)
        })
    });
    let mut out: Vec<(String, endpoint::Answer)> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    for p in paths.iter().skip(MAX_SOCKET_ASKS) {
        out.push((
            p.clone(),
            endpoint::Answer::Unasked(format!("more than {MAX_SOCKET_ASKS} sockets")),
        ));
    }
    out
}

/// A fresh random hex value (nonces of probe runs, marks of execs).
pub(crate) fn random_nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", h.finish())
}

/// Statistics of one target's run, for benchmarks and the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    pub execs: u32,
    pub scanned_bytes: u64,
    pub scanned_files: u64,
    pub elapsed_ms: u64,
}

fn secret_names(file: Option<&Path>) -> Vec<String> {
    let mut v = vec!["secrets.env".to_string()];
    if let Some(b) = file.and_then(|f| f.file_name()).and_then(|b| b.to_str()) {
        if !v.iter().any(|x| x == b) {
            v.push(b.to_string());
        }
    }
    v
}

fn everything_inconclusive(expect: &Expect, why: &str) -> Vec<ProbeResult> {
    SANDBOX_PROBES
        .iter()
        .filter(|p| expect.binds.is_some() || !BIND_PROBES.contains(p))
        .filter(|p| expect.egress.is_some() || !EGRESS_PROBES.contains(p))
        .map(|p| ProbeResult::new(p, Outcome::Inconclusive, why))
        .collect()
}

/// Streams the container's root filesystem (bind mounts included) out of the engine and
/// scans it on a blocking thread, within the budget.
async fn scan_archive<E: Engine>(
    engine: &E,
    id: &str,
    names: Vec<String>,
    needles: Arc<Needles>,
    budget: Budget,
) -> (Result<scan::TarScan, String>, Budget) {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let deadline = budget.deadline;
    let worker = tokio::task::spawn_blocking(move || {
        let mut budget = budget;
        let reader = ChannelReader {
            rx,
            buf: bytes::Bytes::new(),
        };
        let r = scan::scan_tar(reader, "/", &names, &needles, &mut budget);
        (r, budget)
    });
    let mut stream = engine.archive(id, "/");
    let mut stream_error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(Some(Err(e))) => {
                stream_error = Some(crate::report::chain(&e));
                break;
            }
            Ok(None) => break,
            Err(_) => {
                stream_error = Some("the time bound was hit while streaming".into());
                break;
            }
        }
    }
    drop(tx);
    drop(stream);
    let (result, mut budget) = match worker.await {
        Ok(v) => v,
        Err(e) => {
            return (
                Err(format!("the scan thread failed: {e}")),
                Budget::new(0, Duration::ZERO),
            )
        }
    };
    if let Some(e) = stream_error {
        if budget.exhausted.is_none() {
            budget.exhausted = Some(format!("an archive stream error ({e})"));
        }
    }
    (result.map_err(|e| e.to_string()), budget)
}

/// A blocking reader over chunks sent from the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    buf: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.buf = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

fn join_findings(f: &[Finding]) -> String {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for x in f {
        by_key.entry(&x.key).or_default().push(&x.place);
    }
    by_key
        .into_iter()
        .map(|(k, places)| {
            let mut shown: Vec<&str> = places.iter().take(3).copied().collect();
            shown.dedup();
            let more = if places.len() > 3 {
                format!(" and {} more", places.len() - 3)
            } else {
                String::new()
            };
            format!("{k}: {}{more}", shown.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs every check and probe against one target.
pub async fn verify_target<E: Engine>(
    engine: &E,
    target: &Target,
    inputs: &Inputs,
) -> (Vec<ProbeResult>, RunStats) {
    let started = Instant::now();
    let mut stats = RunStats::default();
    let results = verify_inner(engine, target, inputs, &mut stats).await;
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    let results = results
        .into_iter()
        .map(|mut r| {
            r.sandbox = target.name.clone();
            r
        })
        .collect();
    (results, stats)
}

async fn verify_inner<E: Engine>(
    engine: &E,
    target: &Target,
    inputs: &Inputs,
    stats: &mut RunStats,
) -> Vec<ProbeResult> {
    let expect = &target.expect;
    let c = match engine.inspect(&target.container).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return vec![ProbeResult::new(
                "sandbox.running",
                Outcome::Fail,
                format!(
                    "no container {} on the engine; run `clw-fortress apply`",
                    target.container
                ),
            )]
        }
        Err(e) => {
            return vec![ProbeResult::new(
                "sandbox.running",
                Outcome::Inconclusive,
                format!("inspect failed: {}", crate::report::chain(&e)),
            )]
        }
    };
    let sensitive = inspect::Sensitive {
        secrets_file: inputs.secrets_file.clone(),
        deny: inputs.deny.clone(),
    };
    let config = inspect::check(&c, expect, &sensitive);
    if !c.is_running() {
        let mut out = vec![ProbeResult::new(
            "sandbox.running",
            Outcome::Fail,
            "the container is not running; in-sandbox probes could not run",
        )];
        out.extend(everything_inconclusive(
            expect,
            "the sandbox is not running",
        ));
        out.extend(config);
        return out;
    }

    let nonce = random_nonce();
    let names = secret_names(inputs.secrets_file.as_deref());
    let binds = expect.binds.clone().unwrap_or_default();
    // The syscall probe program is x86_64 code; the script runs it only on an x86_64 kernel.
    let program = (!expect.syscalls.is_empty()).then(|| sysprobe::program(&expect.syscalls));
    let tmpfs = tmpfs_mounts(&c);
    let input = ScriptInput {
        nonce: nonce.clone(),
        secret_names: names.clone(),
        secret_paths: inputs
            .secrets_file
            .as_deref()
            .map(|f| inside_paths(f, &c))
            .unwrap_or_default(),
        deny_paths: inputs
            .deny
            .iter()
            .flat_map(|d| inside_paths(d, &c))
            .collect(),
        ro_targets: binds
            .iter()
            .filter(|b| b.read_only)
            .map(|b| b.target.clone())
            .collect(),
        rw_targets: binds
            .iter()
            .filter(|b| !b.read_only)
            .map(|b| b.target.clone())
            .collect(),
        root_readonly: expect.read_only_root,
        exec_dirs: exec_dirs(&c, &tmpfs),
        tmpfs,
        sysprobe_size: program.as_ref().map_or(0, Vec::len),
        deleted_max: DELETED_MAX,
        egress: expect.egress.clone(),
    };
    let req = ExecRequest {
        cmd: vec!["sh".into(), "-c".into(), probes::script(&input)],
        stdin: program,
        ..Default::default()
    };
    stats.execs += 1;
    let exec_limit = inputs.options.scan_timeout + Duration::from_secs(60);
    let exec = tokio::time::timeout(exec_limit, engine.exec(&target.container, &req)).await;
    let output = match exec {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            let mut out = everything_inconclusive(
                expect,
                &format!("exec refused: {}", crate::report::chain(&e)),
            );
            out.extend(config);
            return out;
        }
        Err(_) => {
            let mut out = everything_inconclusive(
                expect,
                &format!("the probe exec did not finish within {exec_limit:?}"),
            );
            out.extend(config);
            return out;
        }
    };
    let split = probes::split_output(&output.stdout, &nonce);

    // Host-side content scan.
    let budget = Budget::new(inputs.options.scan_max_bytes, inputs.options.scan_timeout);
    let (secrets, secrets_problem): (Option<&SecretMap>, Option<String>) = match &inputs.secrets {
        None => (None, None),
        Some(Ok(m)) => (Some(m), None),
        Some(Err(e)) => (None, Some(e.clone())),
    };
    let needles = Arc::new(
        secrets
            .map(|m| Needles::new(m, inputs.options.min_secret_len))
            .unwrap_or_else(|| Needles::new(&SecretMap::default(), 1)),
    );
    let (archive, mut budget) = scan_archive(
        engine,
        &target.container,
        names.clone(),
        needles.clone(),
        budget,
    )
    .await;
    let mut findings = Vec::new();
    let mut name_hits = Vec::new();
    let mut incomplete = Vec::new();
    match archive {
        Ok(s) => {
            findings.extend(s.findings);
            name_hits.extend(s.name_hits);
            stats.scanned_files += s.files;
            incomplete.extend(s.incomplete);
        }
        Err(e) => incomplete.push(format!("the filesystem archive could not be read ({e})")),
    }
    if let Some(tar) = &split.tar {
        match scan::scan_tar(&tar[..], "/", &names, &needles, &mut budget) {
            Ok(s) => {
                findings.extend(s.findings);
                name_hits.extend(s.name_hits);
                stats.scanned_files += s.files;
                incomplete.extend(s.incomplete);
            }
            Err(e) => incomplete.push(format!("the tmpfs archive could not be read ({e})")),
        }
        match split.tar_rc.as_deref() {
            Some("0") => {}
            Some("notar") => incomplete.push("`tar` is missing: tmpfs mounts not scanned".into()),
            Some(rc) => incomplete.push(format!(
                "tar of the tmpfs mounts exited {rc} (unreadable files)"
            )),
            None => incomplete.push("the tmpfs stream was cut short".into()),
        }
    }
    // Files deleted but still held open by a process: gone from every listing, not from
    // the process (nor from anyone who reads its fd).
    for (pid, bytes) in &split.deleted {
        let place = format!("a deleted file held open by pid {pid}");
        match scan::scan_stream(&bytes[..], &place, &needles, &mut budget) {
            Ok(s) => {
                findings.extend(s.findings);
                stats.scanned_files += s.files;
                incomplete.extend(s.incomplete);
            }
            Err(e) => incomplete.push(format!("{place} could not be read ({e})")),
        }
    }
    if !split.deleted_cut.is_empty() {
        incomplete.push(format!(
            "deleted files held open by pid(s) {} exceed the {DELETED_MAX} byte bound",
            split.deleted_cut.join(",")
        ));
    }
    if let Some(why) = &budget.exhausted {
        incomplete.push(format!(
            "scan stopped at {why} after {} bytes (--scan-max-bytes {}, --scan-timeout {}s)",
            budget.used,
            inputs.options.scan_max_bytes,
            inputs.options.scan_timeout.as_secs()
        ));
    }
    stats.scanned_bytes = budget.used;
    findings.sort();
    findings.dedup();

    let ctx = Context {
        command: c.command.clone(),
        secret_names: names,
        archive_name_hits: name_hits,
        cpus: expect
            .cpus
            .map(|c| crate::spec::capped_cpus(c, inputs.host_cpus)),
        sockets: ask_sockets(&c, &split.facts).await,
    };
    let mut results = probes::evaluate(expect, &ctx, &split.facts);

    let short = if needles.skipped.is_empty() {
        String::new()
    } else {
        format!(
            "; not searched (shorter than {} bytes): {}",
            inputs.options.min_secret_len,
            needles.skipped.join(",")
        )
    };
    let content = match (secrets, &secrets_problem) {
        (_, Some(e)) => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Inconclusive,
            format!("the secrets file could not be read: {e}"),
        ),
        (None, None) => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Pass,
            "no secrets file declared; nothing to search for",
        ),
        (Some(_), None) if !findings.is_empty() => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Fail,
            format!("secret values found: {}", join_findings(&findings)),
        ),
        (Some(_), None) if !incomplete.is_empty() => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Inconclusive,
            format!("nothing found, but {}{short}", incomplete.join("; ")),
        ),
        (Some(_), None) if needles.is_empty() => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Inconclusive,
            format!("no secret long enough to search for{short}"),
        ),
        (Some(_), None) => ProbeResult::new(
            "secrets.content-scan",
            Outcome::Pass,
            format!(
                "{} secret(s) not found in {} files / {} bytes (root fs with binds, tmpfs {}, \
                 {} deleted file(s) held open){short}",
                needles.keys().len(),
                stats.scanned_files,
                budget.used,
                input.tmpfs.join(","),
                split.deleted.len()
            ),
        ),
    };
    let env = env_clean(&c, &split, secrets, secrets_problem.as_deref(), &needles);
    results.insert(2, env);
    results.insert(3, content);
    results.extend(config);
    results
}

/// `secrets.env-clean`: the configured env and every process's environ and argv. No process
/// may hold a secret value there, whatever the name it goes by: `exec` injects `secretEnv`
/// into its own process only and ends everything it started before it returns, and verify's
/// own exec carries none.
fn env_clean(
    c: &Container,
    split: &probes::Output,
    secrets: Option<&SecretMap>,
    problem: Option<&str>,
    needles: &Needles,
) -> ProbeResult {
    if let Some(e) = problem {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Inconclusive,
            format!("the secrets file could not be read: {e}"),
        );
    }
    if secrets.is_none() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Pass,
            "no secrets file declared; nothing to search for",
        );
    }
    let mut findings = Vec::new();
    let env = c.env.0.join("\n");
    for key in needles.find_in(env.as_bytes()) {
        findings.push(Finding {
            key,
            place: "the container's configured env (Config.Env)".into(),
        });
    }
    for (what, sections) in [("environ", &split.environ), ("argv", &split.cmdline)] {
        for (pid, bytes) in sections {
            for key in needles.find_in(bytes) {
                findings.push(Finding {
                    key,
                    place: format!("the {what} of pid {pid}"),
                });
            }
        }
    }
    if !findings.is_empty() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Fail,
            format!(
                "secret values in the environment or arguments of processes: {}",
                join_findings(&findings)
            ),
        );
    }
    if split.environ.is_empty() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Inconclusive,
            "no /proc/*/environ could be read",
        );
    }
    if !split.unreadable.is_empty() {
        return ProbeResult::new(
            "secrets.env-clean",
            Outcome::Inconclusive,
            format!(
                "Config.Env clean, but the environ of pid(s) {} is unreadable to the sandbox user",
                split.unreadable.join(",")
            ),
        );
    }
    ProbeResult::new(
        "secrets.env-clean",
        Outcome::Pass,
        format!(
            "no secret in Config.Env or the environ and argv of {} process(es)",
            split.environ.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_path_is_mapped_through_every_mount_that_contains_it() {
        let c = Container {
            mounts: vec![crate::engine::Mount {
                source: "/home/u/.config".into(),
                destination: "/cfg".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            inside_paths(Path::new("/home/u/.config/s/secrets.env"), &c),
            ["/cfg/s/secrets.env", "/home/u/.config/s/secrets.env"]
        );
    }
}
