//! `status`: per declared sandbox and per adopted container, its state, uptime, restarts,
//! limits against current usage, limit events, last verify result and quarantine, plus the
//! last backup per backup entry and the audit log's newest rows.
//!
//! Verify runs, heal counters, the backup catalogue and the audit log are other capabilities'
//! rows; status reads them through `state`'s typed functions and decides nothing about them.
//! It records the limit events it diagnoses (they are cumulative counters, deduplicated on
//! write) and otherwise changes nothing.

use crate::manifest::units::format_size;
use serde::Serialize;

use crate::engine::{ContainerSummary, Engine, EngineError};
use crate::error::ErrorCode;
use crate::host::HostPaths;
use crate::limits::{self, CgroupUsage, LimitEvent, Source, StoredLimitEvent};
use crate::manifest::Fortress;
use crate::ownership::{self, Ownership};
use crate::state::backup::Snapshot;
use crate::state::health::{TargetKey, TargetKind as HealKind};
use crate::state::verify::VerifyRun;
use crate::state::{AuditEntry, State, StateError};

/// Memory use at or above this share of the limit is flagged.
pub const MEMORY_WARN_PERCENT: f64 = 80.0;
/// How many limit events and audit rows status shows per target.
pub const RECENT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Sandbox,
    Adopted,
    /// A container whose labels name a sandbox of this fortress but that this fortress did not
    /// create (crate::ownership): shown, never counted as the sandbox.
    Unrecorded,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Sandbox => "sandbox",
            TargetKind::Adopted => "adopted",
            TargetKind::Unrecorded => "unrecorded",
        }
    }
}

/// A declared sandbox (with its container if it exists), an adopted container, or a container
/// that only claims to be a sandbox of the fortress.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: TargetKind,
    pub name: String,
    pub container: Option<ContainerSummary>,
}

/// The fortress's declared sandboxes, each with the container this fortress created for it
/// ([`crate::ownership`], with the record in `state`; without a database none is), the
/// containers that carry the fortress's labels without that record (kind `unrecorded`), and
/// the containers its `adopt` selectors match.
pub async fn targets<E: Engine>(
    engine: &E,
    f: &Fortress,
    state: Option<&State>,
) -> Result<Vec<Target>, EngineError> {
    let all: Vec<(ContainerSummary, Ownership)> = engine
        .list(&[])
        .await?
        .into_iter()
        .map(|c| {
            let o = ownership::of_logged(state, &f.name, &c.id, &c.labels);
            (c, o)
        })
        .collect();
    let mut out: Vec<Target> = f
        .sandboxes
        .iter()
        .map(|s| Target {
            kind: TargetKind::Sandbox,
            name: s.name.clone(),
            container: all
                .iter()
                .find(|(_, o)| o.owns(&s.name))
                .map(|(c, _)| c.clone()),
        })
        .collect();
    for (c, o) in &all {
        let kind = if o.is_unrecorded() {
            TargetKind::Unrecorded
        } else if o.adoptable()
            && f.adopt
                .iter()
                .any(|a| a.selector.matches(&c.name, &c.labels))
        {
            TargetKind::Adopted
        } else {
            continue;
        };
        out.push(Target {
            kind,
            name: c.name.clone(),
            container: Some(c.clone()),
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryUsage {
    pub usage: i64,
    pub limit: Option<i64>,
    pub percent: Option<f64>,
    /// At or above [`MEMORY_WARN_PERCENT`] of the limit.
    pub warn: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PidsUsage {
    pub current: i64,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuUsage {
    /// CPUs; `None` when unlimited.
    pub limit: Option<f64>,
    pub periods: Option<i64>,
    pub throttled_periods: Option<i64>,
    pub throttled_usec: Option<i64>,
}

/// Memory usage against its limit. Pure.
pub fn memory_usage(u: &CgroupUsage) -> Option<MemoryUsage> {
    let usage = u.memory_current?;
    let percent = u
        .memory_limit
        .filter(|l| *l > 0)
        .map(|l| (usage as f64 * 1000.0 / l as f64).round() / 10.0);
    Some(MemoryUsage {
        usage,
        limit: u.memory_limit,
        percent,
        warn: percent.is_some_and(|p| p >= MEMORY_WARN_PERCENT),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub kind: TargetKind,
    pub container_id: Option<String>,
    /// The engine's state (`running`, `exited`, ...), or `missing`.
    pub state: String,
    pub started_at: Option<String>,
    pub uptime_s: Option<i64>,
    /// The restarts clw-fortress recorded for this sandbox (heal's liveness and crash path,
    /// failed attempts included); `None` for an adopted container or without a database.
    pub restarts: Option<u64>,
    /// The engine's own restart count of the current container (its restart policy); heal
    /// restarts are not in it.
    pub restart_count: Option<i64>,
    pub oom_killed: bool,
    pub usage_source: Source,
    pub memory: Option<MemoryUsage>,
    pub pids: Option<PidsUsage>,
    pub cpu: Option<CpuUsage>,
    /// What the diagnosis found now.
    pub limits_exceeded: Vec<LimitEvent>,
    /// The newest recorded limit events (including earlier containers of the sandbox).
    pub limit_events: Vec<StoredLimitEvent>,
    /// The newest verify run of this sandbox.
    pub last_verify: Option<VerifyRun>,
    /// Since when heal has held this sandbox in quarantine (Unix ms); `None` when it is not.
    pub quarantined_since_ms: Option<i64>,
    pub audit: Vec<AuditEntry>,
    /// The newest connections the egress proxy refused for this sandbox.
    pub egress_denied: Vec<crate::state::EgressEvent>,
}

/// One backup entry of the manifest. Backups are per entry, not per sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct BackupStatus {
    pub name: String,
    pub dest: String,
    /// The entry's newest snapshot attempt, good or failed.
    pub last: Option<Snapshot>,
}

/// A quarantined health check of the fortress (sandboxes carry their own quarantine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedCheck {
    pub name: String,
    pub quarantined_since_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub fortress: String,
    /// When the report was taken (Unix ms); ages in the text are relative to it.
    pub at_ms: i64,
    pub targets: Vec<TargetStatus>,
    pub backups: Vec<BackupStatus>,
    /// The fortress's newest snapshot attempt over every backup entry.
    pub last_backup: Option<Snapshot>,
    pub quarantined_checks: Vec<QuarantinedCheck>,
}

/// The heal target of sandbox `name`.
fn heal_key(f: &Fortress, name: &str) -> TargetKey {
    TargetKey {
        fortress: f.name.clone(),
        kind: HealKind::Sandbox,
        name: name.to_string(),
    }
}

/// The fortress's health checks heal holds in quarantine.
fn quarantined_checks(state: &State, f: &Fortress) -> Result<Vec<QuarantinedCheck>, StateError> {
    let mut out = Vec::new();
    for key in state.health_targets(Some(&f.name))? {
        if key.kind != HealKind::Check {
            continue;
        }
        if let Some(since) = state
            .health_target(&key)?
            .and_then(|r| r.quarantined_since_ms)
        {
            out.push(QuarantinedCheck {
                name: key.name,
                quarantined_since_ms: since,
            });
        }
    }
    Ok(out)
}

/// Logs a state read that failed: status shows what it can rather than failing.
fn logged<T: Default>(what: &str, r: Result<T, StateError>) -> T {
    r.unwrap_or_else(|e| {
        tracing::warn!(error = %crate::report::chain(&e), "status cannot read {what}");
        T::default()
    })
}

fn uptime(started_at: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(started_at).ok()?;
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
    (secs >= 0).then_some(secs)
}

/// Gathers the status of every target, recording the limit events found now.
pub async fn collect<E: Engine>(
    engine: &E,
    f: &Fortress,
    state: Option<&State>,
    host: &HostPaths,
) -> Result<StatusReport, EngineError> {
    let mut out = Vec::new();
    for t in targets(engine, f, state).await? {
        out.push(target_status(engine, f, &t, state, host).await?);
    }
    let backups: Vec<BackupStatus> = f
        .backups
        .iter()
        .map(|b| BackupStatus {
            name: b.name.clone(),
            dest: b.dest.display().to_string(),
            last: state
                .and_then(|s| logged("the backup catalogue", s.last_snapshot_of_entry(&b.name))),
        })
        .collect();
    let last_backup = backups
        .iter()
        .filter_map(|b| b.last.as_ref())
        .max_by_key(|s| (s.created_ms, s.id))
        .cloned();
    Ok(StatusReport {
        fortress: f.name.clone(),
        at_ms: crate::state::now_ms(),
        targets: out,
        backups,
        last_backup,
        quarantined_checks: state
            .map(|s| logged("heal's counters", quarantined_checks(s, f)))
            .unwrap_or_default(),
    })
}

async fn target_status<E: Engine>(
    engine: &E,
    f: &Fortress,
    t: &Target,
    state: Option<&State>,
    host: &HostPaths,
) -> Result<TargetStatus, EngineError> {
    let mut s = TargetStatus {
        name: t.name.clone(),
        kind: t.kind,
        container_id: None,
        state: "missing".into(),
        started_at: None,
        uptime_s: None,
        restarts: None,
        restart_count: None,
        oom_killed: false,
        usage_source: Source::None,
        memory: None,
        pids: None,
        cpu: None,
        limits_exceeded: Vec::new(),
        limit_events: Vec::new(),
        last_verify: None,
        quarantined_since_ms: None,
        audit: Vec::new(),
        egress_denied: Vec::new(),
    };
    if let Some(c) = &t.container {
        if let Some(i) = engine.inspect(&c.id).await? {
            let st = &i.state;
            s.container_id = Some(i.id.clone());
            s.state = if st.status.is_empty() {
                c.state.clone()
            } else {
                st.status.clone()
            };
            s.restart_count = Some(i.restart_count);
            if st.running {
                s.started_at = st.started_at.clone();
                s.uptime_s = st.started_at.as_deref().and_then(uptime);
            }
        }
        if let Some(o) = limits::observe(engine, &c.id, host).await? {
            s.oom_killed = o.oom_killed;
            s.usage_source = o.source;
            if let Some(u) = &o.usage {
                s.memory = memory_usage(u);
                s.pids = u.pids_current.map(|current| PidsUsage {
                    current,
                    limit: u.pids_limit,
                });
                s.cpu = Some(CpuUsage {
                    limit: u.cpu_limit,
                    periods: u.cpu_periods,
                    throttled_periods: u.cpu_throttled_periods,
                    throttled_usec: u.cpu_throttled_usec,
                });
            }
            s.limits_exceeded = limits::classify(&o);
            // An unrecorded container's events are not the sandbox's whose name it may hold.
            if let Some(st) = state.filter(|_| t.kind != TargetKind::Unrecorded) {
                if let Err(e) =
                    limits::record_limit_events(st, &o.container_id, &t.name, &s.limits_exceeded)
                {
                    tracing::warn!(target = %t.name, error = %crate::report::chain(&e), "cannot record limit events");
                }
            }
        }
    }
    if let Some(st) = state.filter(|_| t.kind != TargetKind::Unrecorded) {
        s.limit_events = logged(
            "limit events",
            limits::recent_limit_events(st, Some(&t.name), RECENT),
        );
        s.audit = logged("the audit log", st.recent_audit(Some(&t.name), RECENT));
        if t.kind == TargetKind::Sandbox {
            s.egress_denied = logged("egress refusals", st.egress_denials(Some(&t.name), RECENT));
        }
        s.last_verify = logged("verify runs", st.last_verify_run(&t.name));
        if t.kind == TargetKind::Sandbox {
            let key = heal_key(f, &t.name);
            s.restarts = Some(logged("the restart log", st.restart_count(&key)));
            s.quarantined_since_ms = logged("heal's counters", st.health_target(&key))
                .and_then(|r| r.quarantined_since_ms);
        }
    }
    Ok(s)
}

fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// How long before `now_ms` the time `ms` was, as a duration (never negative).
fn age(now_ms: i64, ms: i64) -> String {
    duration(now_ms.saturating_sub(ms).max(0) / 1000)
}

/// Heal's restarts, then the engine's own count when it has one: `2`, `2 (engine 1)`.
fn restarts_cell(heal: Option<u64>, engine: Option<i64>) -> String {
    let heal = heal.map_or_else(|| "-".to_string(), |n| n.to_string());
    match engine {
        Some(n) if n > 0 => format!("{heal} (engine {n})"),
        _ => heal,
    }
}

/// `ok 3m0s ago` / `failed 2h5m ago` for a snapshot attempt.
fn backup_cell(now_ms: i64, s: &Snapshot) -> String {
    format!("{} {} ago", s.status.as_str(), age(now_ms, s.created_ms))
}

impl StatusReport {
    /// The report as a table, then per target its limit events and audit rows.
    pub fn render_text(&self) -> String {
        let header = [
            "TARGET",
            "KIND",
            "STATE",
            "UPTIME",
            "RESTARTS",
            "MEMORY",
            "PIDS",
            "CPU",
            "VERIFY",
            "QUARANTINE",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        for t in &self.targets {
            let mem = match &t.memory {
                Some(m) => format!(
                    "{}/{}{}{}",
                    format_size(m.usage),
                    m.limit.map(format_size).unwrap_or_else(|| "-".into()),
                    m.percent.map(|p| format!(" {p:.0}%")).unwrap_or_default(),
                    if m.warn { " !" } else { "" }
                ),
                None => "-".into(),
            };
            let pids = match &t.pids {
                Some(p) => format!(
                    "{}/{}",
                    p.current,
                    p.limit.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
                ),
                None => "-".into(),
            };
            let cpu = match &t.cpu {
                Some(c) => format!(
                    "{} thr {}/{}",
                    c.limit
                        .map(|l| format!("{l}cpu"))
                        .unwrap_or_else(|| "unl.".into()),
                    c.throttled_periods.unwrap_or(0),
                    c.periods.unwrap_or(0)
                ),
                None => "-".into(),
            };
            rows.push(vec![
                t.name.clone(),
                t.kind.as_str().to_string(),
                t.state.clone(),
                t.uptime_s.map(duration).unwrap_or_else(|| "-".into()),
                restarts_cell(t.restarts, t.restart_count),
                mem,
                pids,
                cpu,
                t.last_verify
                    .as_ref()
                    .map_or_else(|| "-".into(), |v| v.outcome.clone()),
                t.quarantined_since_ms
                    .map_or_else(|| "-".into(), |q| format!("since {}", age(self.at_ms, q))),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("fortress {}\n", self.fortress);
        if !self.backups.is_empty() {
            out.push_str(&match &self.last_backup {
                Some(b) => format!(
                    "last backup: {} {}, {}\n",
                    b.entry,
                    backup_cell(self.at_ms, b),
                    b.source
                ),
                None => "last backup: none yet\n".to_string(),
            });
        }
        for q in &self.quarantined_checks {
            out.push_str(&format!(
                "quarantined: check {} since {} (`clw-fortress heal --release {}` lifts it)\n",
                q.name,
                age(self.at_ms, q.quarantined_since_ms),
                q.name
            ));
        }
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        for t in &self.targets {
            if t.limits_exceeded.is_empty()
                && t.limit_events.is_empty()
                && t.audit.is_empty()
                && t.egress_denied.is_empty()
            {
                continue;
            }
            out.push_str(&format!("\n{}:\n", t.name));
            for e in &t.limit_events {
                out.push_str(&format!(
                    "  {}\n",
                    crate::report::headline(
                        ErrorCode::SandboxLimitExceeded,
                        &format!("{} ({})", e.message, fmt_ts(e.ts_ms))
                    )
                ));
            }
            for d in &t.egress_denied {
                // A refused sentinel has no rule that would allow it.
                let fix = if d.rule_needed.is_empty() {
                    String::new()
                } else {
                    format!("; allow with egress.allow: [\"{}\"]", d.rule_needed)
                };
                out.push_str(&format!(
                    "  egress denied {} {}:{} ({}){fix}\n",
                    fmt_ts(d.ts_ms),
                    d.host,
                    d.port,
                    d.reason,
                ));
            }
            for a in &t.audit {
                out.push_str(&format!(
                    "  audit {} {} {} {}{}\n",
                    fmt_ts(a.ts_ms),
                    a.actor,
                    a.action,
                    a.outcome,
                    if a.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", a.detail)
                    }
                ));
            }
        }
        if !self.backups.is_empty() {
            out.push_str("\nbackups:\n");
            for b in &self.backups {
                let last = b.last.as_ref().map_or_else(
                    || "none yet".to_string(),
                    |s| {
                        format!(
                            "{} ({}, {})",
                            backup_cell(self.at_ms, s),
                            fmt_ts(s.created_ms),
                            s.source
                        )
                    },
                );
                out.push_str(&format!("  {} -> {}: last {last}\n", b.name, b.dest));
            }
        }
        out
    }
}

fn fmt_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::engine::CreateRequest;
    use crate::spec::{LABEL_FORTRESS, LABEL_MANAGED, LABEL_SANDBOX};

    fn sandbox_labels(sandbox: &str) -> std::collections::BTreeMap<String, String> {
        [
            (LABEL_MANAGED.to_string(), "1".to_string()),
            (LABEL_FORTRESS.to_string(), "f".to_string()),
            (LABEL_SANDBOX.to_string(), sandbox.to_string()),
        ]
        .into()
    }

    async fn add(
        engine: &FakeEngine,
        name: &str,
        labels: &[(&str, &str)],
        sandbox: &str,
    ) -> String {
        let mut l = sandbox_labels(sandbox);
        l.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let id = engine
            .create(&CreateRequest {
                name: name.into(),
                labels: l,
                ..Default::default()
            })
            .await
            .unwrap();
        engine.start(&id).await.unwrap();
        id
    }

    /// A container carrying the sandbox's labels that this fortress did not create is shown as
    /// `unrecorded`, never as the sandbox, and gets none of the sandbox's history.
    #[tokio::test]
    async fn a_container_with_copied_labels_is_shown_as_unrecorded_not_as_the_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        let f = fortress_with_backup();
        let engine = FakeEngine::default();
        let calm = add(&engine, "calm", &[], "calm").await;
        state.record_created("f", "calm", &calm).unwrap();
        // Holding the sandbox's name with its labels copied, and a second copy under another
        // name that an adopt selector would match.
        let forged = add(&engine, "sbx", &[], "sbx").await;
        add(&engine, "sbx-copy", &[("agent", "1")], "sbx").await;
        state
            .log_restart(&heal_key(&f, "sbx"), 1, "ok", "")
            .unwrap();
        let f = Fortress {
            adopt: vec![crate::manifest::Adopt {
                selector: crate::manifest::Selector::Label {
                    key: "agent".into(),
                    value: None,
                },
                limits: Default::default(),
                egress: None,
            }],
            ..f
        };

        let host = HostPaths::under(dir.path());
        let r = collect(&engine, &f, Some(&state), &host).await.unwrap();
        let rows: Vec<(&str, TargetKind, &str, Option<&str>)> = r
            .targets
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.kind,
                    t.state.as_str(),
                    t.container_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("sbx", TargetKind::Sandbox, "missing", None),
                ("calm", TargetKind::Sandbox, "running", Some(calm.as_str())),
                (
                    "sbx",
                    TargetKind::Unrecorded,
                    "running",
                    Some(forged.as_str())
                ),
                ("sbx-copy", TargetKind::Unrecorded, "running", rows[3].3),
            ]
        );
        assert_eq!(r.targets[0].restarts, Some(1));
        assert_eq!(
            r.targets[2].restarts, None,
            "the sandbox's history is not the copy's"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["targets"][2]["kind"], "unrecorded");
        let text = r.render_text();
        assert!(
            text.lines().any(|l| l
                .split_whitespace()
                .take(3)
                .eq(["sbx", "unrecorded", "running"])),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l
                .split_whitespace()
                .take(3)
                .eq(["sbx", "sandbox", "missing"])),
            "{text}"
        );

        // Without a database nothing is recorded, so nothing is shown as the sandbox.
        let r = collect(&engine, &f, None, &host).await.unwrap();
        let calm_row = r
            .targets
            .iter()
            .find(|t| t.name == "calm" && t.kind == TargetKind::Sandbox)
            .unwrap();
        assert_eq!(calm_row.state, "missing");
    }

    #[test]
    fn memory_at_eighty_percent_of_its_limit_is_flagged() {
        for (current, limit, percent, warn) in [
            (Some(50 << 20), Some(64 << 20), Some(78.1), false),
            (Some(52 << 20), Some(64 << 20), Some(81.3), true),
            (Some(64 << 20), Some(64 << 20), Some(100.0), true),
            (Some(1 << 20), None, None, false),
        ] {
            let u = CgroupUsage {
                memory_current: current,
                memory_limit: limit,
                ..Default::default()
            };
            let m = memory_usage(&u).unwrap();
            assert_eq!(
                (m.percent, m.warn),
                (percent, warn),
                "{current:?}/{limit:?}"
            );
        }
        assert_eq!(memory_usage(&CgroupUsage::default()), None);
    }

    fn fortress_with_backup() -> Fortress {
        Fortress {
            sandboxes: vec![
                crate::spec::tests::sandbox("sbx"),
                crate::spec::tests::sandbox("calm"),
            ],
            backups: vec![crate::manifest::Backup {
                name: "memory".into(),
                sources: vec!["/m/*.db".into()],
                dest: "/b".into(),
                schedule: None,
                keep: crate::manifest::Keep {
                    last: 3,
                    daily: 0,
                    weekly: 0,
                },
            }],
            ..Fortress::for_tests()
        }
    }

    fn snapshot(state: &State, created_ms: i64, status: crate::state::backup::Status) -> i64 {
        use crate::state::backup::{NewSnapshot, Status};
        state
            .insert_snapshot(&NewSnapshot {
                entry: "memory",
                source: "/m/a.db",
                path: None,
                size_bytes: None,
                page_count: None,
                sha256: None,
                duration_ms: 1,
                integrity: "ok",
                created_ms,
                status,
                error_code: (status == Status::Failed).then_some(ErrorCode::BackupFailed),
                error: None,
            })
            .unwrap()
    }

    /// A real (file) state database, filled through the same typed functions heal, verify and
    /// backup write with, read back by `collect` and shown in both renderings.
    #[tokio::test]
    async fn quarantine_heal_restarts_verify_and_the_last_backup_come_from_the_state_database() {
        use crate::state::backup::Status;
        use crate::state::health::HealthRow;
        use crate::state::verify::VerifyRun;

        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        let f = fortress_with_backup();
        let engine = FakeEngine::default();
        for name in ["sbx", "calm"] {
            let id = add(&engine, name, &[], name).await;
            state.record_created("f", name, &id).unwrap();
        }

        let now = crate::state::now_ms();
        let sbx = heal_key(&f, "sbx");
        state.log_restart(&sbx, now - 400_000, "ok", "").unwrap();
        state
            .log_restart(&sbx, now - 300_000, "failed", "gone")
            .unwrap();
        state
            .save_health_target(
                &sbx,
                &HealthRow {
                    quarantined_since_ms: Some(now - 180_000),
                    ..Default::default()
                },
            )
            .unwrap();
        // A check of another fortress and a healthy check of this one stay out of it.
        let check = |fortress: &str, name: &str| TargetKey {
            fortress: fortress.into(),
            kind: HealKind::Check,
            name: name.into(),
        };
        for (key, since) in [
            (check("f", "web"), Some(now - 60_000)),
            (check("f", "db"), None),
            (check("other", "web"), Some(now)),
        ] {
            state
                .save_health_target(
                    &key,
                    &HealthRow {
                        quarantined_since_ms: since,
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        state
            .record_verify_run(&VerifyRun {
                ts_ms: now,
                fortress: "f".into(),
                sandbox: "sbx".into(),
                passed: 29,
                failed: 1,
                inconclusive: 0,
                outcome: "fail".into(),
                not_passed: vec!["limits.pids".into()],
            })
            .unwrap();
        snapshot(&state, now - 7_200_000, Status::Ok);
        let newest = snapshot(&state, now - 120_000, Status::Failed);

        let host = HostPaths::under(dir.path());
        let r = collect(&engine, &f, Some(&state), &host).await.unwrap();
        let t = |name: &str| r.targets.iter().find(|t| t.name == name).unwrap();
        assert_eq!(t("sbx").quarantined_since_ms, Some(now - 180_000));
        assert_eq!(t("sbx").restarts, Some(2));
        assert_eq!(t("sbx").last_verify.as_ref().unwrap().outcome, "fail");
        assert_eq!(t("calm").quarantined_since_ms, None);
        assert_eq!(t("calm").restarts, Some(0));
        assert_eq!(r.backups[0].last.as_ref().unwrap().id, newest);
        assert_eq!(r.last_backup.as_ref().unwrap().id, newest);
        assert_eq!(
            r.quarantined_checks,
            [QuarantinedCheck {
                name: "web".into(),
                quarantined_since_ms: now - 60_000
            }]
        );

        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["targets"][0]["quarantined_since_ms"], now - 180_000);
        assert_eq!(json["last_backup"]["status"], "failed");

        let text = r.render_text();
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no row {name} in {text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        // TARGET KIND STATE UPTIME RESTARTS MEMORY PIDS CPU VERIFY QUARANTINE
        assert_eq!(row("sbx")[4], "2", "{text}");
        assert_eq!(row("sbx")[8..], ["fail", "since", "3m0s"], "{text}");
        assert_eq!(row("calm")[8..], ["-", "-"], "{text}");
        assert!(
            text.contains("last backup: memory failed 2m0s ago, /m/a.db"),
            "{text}"
        );
        assert!(text.contains("quarantined: check web since 1m0s"), "{text}");
        assert!(
            text.contains("  memory -> /b: last failed 2m0s ago"),
            "{text}"
        );
    }

    #[test]
    fn restarts_show_heals_count_and_the_engines_when_it_has_one() {
        for (heal, engine, cell) in [
            (Some(2), Some(0), "2"),
            (Some(0), Some(3), "0 (engine 3)"),
            (None, None, "-"),
            (None, Some(1), "- (engine 1)"),
        ] {
            assert_eq!(restarts_cell(heal, engine), cell);
        }
    }
}
