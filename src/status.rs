//! `status`: per declared sandbox and per adopted container, its state, uptime, restarts,
//! limits against current usage, limit events, last verify result and quarantine, plus the
//! last backup per backup entry and the audit log's newest rows.
//!
//! Verify, backup and quarantine are other capabilities with their own tables; status reads
//! them only when they exist (looked up in `sqlite_master`) and only generically (the newest
//! row naming the target), so it works before and after those land. Status records the limit
//! events it diagnoses (they are cumulative counters, deduplicated on write) and otherwise
//! changes nothing.

use crate::manifest::units::format_size;
use serde::Serialize;

use crate::engine::{ContainerSummary, Engine, EngineError};
use crate::host::HostPaths;
use crate::limits::{self, CgroupUsage, LimitEvent, Source, StoredLimitEvent};
use crate::manifest::{Fortress, Selector};
use crate::spec::{LABEL_FORTRESS, LABEL_SANDBOX};
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
}

/// A declared sandbox (with its container if it exists) or an adopted container.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: TargetKind,
    pub name: String,
    pub container: Option<ContainerSummary>,
}

/// True when `c` matches an `adopt` selector.
pub fn selects(sel: &Selector, c: &ContainerSummary) -> bool {
    match sel {
        Selector::Label { key, value } => match (c.labels.get(key), value) {
            (Some(v), Some(want)) => v == want,
            (Some(_), None) => true,
            (None, _) => false,
        },
        Selector::NamePrefix(p) => c.name.starts_with(p.as_str()),
    }
}

/// The fortress's declared sandboxes (matched by name and fortress label) and the containers
/// its `adopt` selectors match (never its own sandboxes).
pub async fn targets<E: Engine>(engine: &E, f: &Fortress) -> Result<Vec<Target>, EngineError> {
    let all = engine.list(&[]).await?;
    let ours = |c: &ContainerSummary| c.labels.get(LABEL_FORTRESS) == Some(&f.name);
    let mut out: Vec<Target> = f
        .sandboxes
        .iter()
        .map(|s| Target {
            kind: TargetKind::Sandbox,
            name: s.name.clone(),
            container: all
                .iter()
                .find(|c| {
                    ours(c) && (c.labels.get(LABEL_SANDBOX) == Some(&s.name) || c.name == s.name)
                })
                .cloned(),
        })
        .collect();
    for c in &all {
        if ours(c) {
            continue;
        }
        if f.adopt.iter().any(|a| selects(&a.selector, c)) {
            out.push(Target {
                kind: TargetKind::Adopted,
                name: c.name.clone(),
                container: Some(c.clone()),
            });
        }
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
    /// The newest row naming this target in a verify table, when such a table exists.
    pub last_verify: Option<serde_json::Value>,
    /// The newest row naming this target in a quarantine table, when such a table exists.
    pub quarantine: Option<serde_json::Value>,
    pub audit: Vec<AuditEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupStatus {
    pub name: String,
    pub dest: String,
    pub last: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub fortress: String,
    pub targets: Vec<TargetStatus>,
    pub backups: Vec<BackupStatus>,
    /// Which optional tables of other capabilities exist in the state database.
    pub tables: Vec<String>,
}

fn query(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError {
    move |source| StateError::Query { op, source }
}

/// The tables whose name starts with `prefix`.
fn tables_like(state: &State, prefix: &str) -> Result<Vec<String>, StateError> {
    let conn = state.connection();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?1 || '%' ORDER BY name")
        .map_err(query("list tables"))?;
    let rows = stmt
        .query_map([prefix], |r| r.get::<_, String>(0))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(query("list tables"))?;
    Ok(rows)
}

fn json_of(v: rusqlite::types::ValueRef<'_>) -> serde_json::Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => f.into(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => format!("<{} bytes>", b.len()).into(),
    }
}

/// The newest row naming `key` in any table starting with `prefix`, as `{table, row}`. The
/// key column is the first of `sandbox`, `target`, `container`, `name` the table has.
pub fn latest_row(
    state: &State,
    prefix: &str,
    key: &str,
) -> Result<Option<serde_json::Value>, StateError> {
    let conn = state.connection();
    let mut best: Option<(i64, serde_json::Value)> = None;
    for table in tables_like(state, prefix)? {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let mut cols_stmt = conn
            .prepare(&format!("PRAGMA table_info({quoted})"))
            .map_err(query("table info"))?;
        let cols: Vec<String> = cols_stmt
            .query_map([], |r| r.get::<_, String>(1))
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(query("table info"))?;
        let Some(col) = ["sandbox", "target", "container", "name"]
            .into_iter()
            .find(|c| cols.iter().any(|x| x == c))
        else {
            continue;
        };
        let sql = format!(
            "SELECT rowid, * FROM {quoted} WHERE \"{col}\" = ?1 ORDER BY rowid DESC LIMIT 1"
        );
        let mut stmt = conn.prepare(&sql).map_err(query("select latest row"))?;
        let row = stmt
            .query_row([key], |r| {
                let rowid: i64 = r.get(0)?;
                let mut obj = serde_json::Map::new();
                for (i, c) in cols.iter().enumerate() {
                    obj.insert(c.clone(), json_of(r.get_ref(i + 1)?));
                }
                Ok((rowid, obj))
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(query("select latest row"))?;
        if let Some((rowid, obj)) = row {
            let ts = ["ts_ms", "finished_ms", "started_ms", "created_ms"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(|v| v.as_i64()))
                .unwrap_or(rowid);
            if best.as_ref().is_none_or(|(t, _)| ts > *t) {
                best = Some((ts, serde_json::json!({"table": table, "row": obj})));
            }
        }
    }
    Ok(best.map(|(_, v)| v))
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
    for t in targets(engine, f).await? {
        out.push(target_status(engine, &t, state, host).await?);
    }
    let mut backups = Vec::new();
    for b in &f.backups {
        backups.push(BackupStatus {
            name: b.name.clone(),
            dest: b.dest.display().to_string(),
            last: state.and_then(|s| latest_row(s, "backup", &b.name).ok().flatten()),
        });
    }
    let mut tables = Vec::new();
    if let Some(s) = state {
        for p in ["verify", "backup", "quarantine"] {
            tables.extend(tables_like(s, p).unwrap_or_default());
        }
    }
    Ok(StatusReport {
        fortress: f.name.clone(),
        targets: out,
        backups,
        tables,
    })
}

async fn target_status<E: Engine>(
    engine: &E,
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
        restart_count: None,
        oom_killed: false,
        usage_source: Source::None,
        memory: None,
        pids: None,
        cpu: None,
        limits_exceeded: Vec::new(),
        limit_events: Vec::new(),
        last_verify: None,
        quarantine: None,
        audit: Vec::new(),
    };
    if let Some(c) = &t.container {
        if let Some(i) = engine.inspect(&c.id).await? {
            let st = i.state.clone().unwrap_or_default();
            s.container_id = i.id.clone();
            s.state = st
                .status
                .map(|x| x.to_string())
                .unwrap_or_else(|| c.state.clone());
            s.restart_count = i.restart_count;
            if st.running == Some(true) {
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
            if let Some(st) = state {
                if let Err(e) =
                    limits::record_limit_events(st, &o.container_id, &t.name, &s.limits_exceeded)
                {
                    tracing::warn!(target = %t.name, error = %crate::report::chain(&e), "cannot record limit events");
                }
            }
        }
    }
    if let Some(st) = state {
        s.limit_events = limits::recent_limit_events(st, Some(&t.name), RECENT).unwrap_or_default();
        s.last_verify = latest_row(st, "verify", &t.name).ok().flatten();
        s.quarantine = latest_row(st, "quarantine", &t.name).ok().flatten();
        s.audit = st.recent_audit(Some(&t.name), RECENT).unwrap_or_default();
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

/// One cell summarising an optional table's row: its outcome-like column, else "recorded".
fn row_cell(v: &Option<serde_json::Value>) -> String {
    let Some(v) = v else { return "-".into() };
    let row = &v["row"];
    for k in ["outcome", "result", "status", "state", "ok"] {
        match &row[k] {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => return s.clone(),
            other => return other.to_string(),
        }
    }
    "recorded".into()
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
                format!("{:?}", t.kind).to_lowercase(),
                t.state.clone(),
                t.uptime_s.map(duration).unwrap_or_else(|| "-".into()),
                t.restart_count
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into()),
                mem,
                pids,
                cpu,
                row_cell(&t.last_verify),
                row_cell(&t.quarantine),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("fortress {}\n", self.fortress);
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
            if t.limits_exceeded.is_empty() && t.limit_events.is_empty() && t.audit.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{}:\n", t.name));
            for e in &t.limit_events {
                out.push_str(&format!(
                    "  error[clw-sandbox-limit-exceeded] {} ({})\n",
                    e.message,
                    fmt_ts(e.ts_ms)
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
                out.push_str(&format!(
                    "  {} -> {}: last {}\n",
                    b.name,
                    b.dest,
                    row_cell(&b.last)
                ));
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
    use std::collections::BTreeMap;

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

    fn summary(name: &str, labels: &[(&str, &str)]) -> ContainerSummary {
        ContainerSummary {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        }
    }

    #[test]
    fn adopt_selectors_match_by_label_or_name_prefix() {
        let c = summary("openclaw-sbx-agent-1", &[("com.openclaw.sandbox", "1")]);
        for (sel, expected) in [
            (
                Selector::Label {
                    key: "com.openclaw.sandbox".into(),
                    value: Some("1".into()),
                },
                true,
            ),
            (
                Selector::Label {
                    key: "com.openclaw.sandbox".into(),
                    value: Some("0".into()),
                },
                false,
            ),
            (
                Selector::Label {
                    key: "com.openclaw.sandbox".into(),
                    value: None,
                },
                true,
            ),
            (Selector::NamePrefix("openclaw-sbx-".into()), true),
            (Selector::NamePrefix("other-".into()), false),
        ] {
            assert_eq!(selects(&sel, &c), expected, "{sel:?}");
        }
    }

    #[test]
    fn optional_tables_are_read_only_when_they_exist() {
        let s = State::in_memory();
        assert_eq!(latest_row(&s, "verify", "sbx").unwrap(), None);
        s.connection()
            .execute_batch(
                "CREATE TABLE verify_result (id INTEGER PRIMARY KEY, ts_ms INTEGER, sandbox TEXT, outcome TEXT);
                 INSERT INTO verify_result (ts_ms, sandbox, outcome) VALUES (1, 'sbx', 'failed');
                 INSERT INTO verify_result (ts_ms, sandbox, outcome) VALUES (2, 'sbx', 'passed');
                 INSERT INTO verify_result (ts_ms, sandbox, outcome) VALUES (3, 'other', 'failed');
                 CREATE TABLE verify_notes (x TEXT);",
            )
            .unwrap();
        let v = latest_row(&s, "verify", "sbx").unwrap().unwrap();
        assert_eq!(v["table"], "verify_result");
        assert_eq!(v["row"]["outcome"], "passed");
        assert_eq!(row_cell(&Some(v)), "passed");
        assert_eq!(latest_row(&s, "quarantine", "sbx").unwrap(), None);
    }
}
