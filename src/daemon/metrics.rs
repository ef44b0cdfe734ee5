//! The agent's Prometheus metrics and the tiny HTTP server that serves them (`/metrics`,
//! `/healthz`, `/readyz`) when `metrics.listen` is set.
//!
//! `/metrics` speaks OpenMetrics to a client that asks for it (Prometheus does) and the
//! Prometheus text format 0.0.4 to everyone else (curl, `promtool check metrics`, older
//! scrapers). prometheus-client encodes OpenMetrics only; the two formats differ in three
//! mechanical ways for what this agent exports (a counter's HELP/TYPE name carries `_total`,
//! no `# UNIT`, no `# EOF`), so [`to_prometheus_text`] rewrites those lines rather than
//! bringing in a second metrics library.
//!
//! It owns the metric names (stable: dashboards and alerts are written against them) and the
//! listener. It must not decide anything: the daemon loop counts, this module only holds and
//! renders. The server is hyper's HTTP/1 server (already in the tree through bollard) rather
//! than a web framework: two fixed GET routes need no router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::sample::Sample;

type Labels = Vec<(&'static str, String)>;

fn lag_histogram() -> Histogram {
    // 1 ms .. ~33 s: an event is normally handled within milliseconds; seconds mean the agent
    // or the engine is struggling.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn job_histogram() -> Histogram {
    // 10 ms .. ~5.5 min: a sweep over a handful of containers takes well under a second.
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    enforcements: Family<Labels, Counter>,
    drift_corrections: Counter,
    engine_reconnects: Counter,
    isolation_breaches: Counter,
    engine_up: Gauge,
    events: Counter,
    event_lag: Histogram,
    job_runs: Family<Labels, Counter>,
    job_duration: Family<Labels, Histogram, fn() -> Histogram>,
    reloads: Family<Labels, Counter>,
    egress_denied: Family<Labels, Counter>,
    egress_allowed_bytes: Family<Labels, Counter>,
    egress_sentinel_refused: Family<Labels, Counter>,
    /// The `(sandbox, host)` series of `egress_denied` so far: a sandbox chooses the host
    /// names it is refused for, so their number is capped (the rest count under `_other`).
    egress_denied_series: parking_lot::Mutex<std::collections::HashSet<(String, String)>>,
    engine_connected: AtomicBool,
    /// Unix ms of the last limits sweep that ran since the engine was (re)connected; 0: none.
    last_sweep_ms: AtomicI64,
    /// The newest per-sandbox sample, rendered by [`SampleSeries`] on each scrape.
    sample: Arc<SampleSeries>,
}

/// Distinct `host` label values of `egress_denied_total` kept before `_other`.
pub const EGRESS_DENIED_HOSTS_MAX: usize = 1000;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_clock(|| chrono::Utc::now().timestamp_millis())
    }

    /// [`Metrics::new`] with `clock` (unix ms) for the ages computed at scrape time.
    fn with_clock(clock: fn() -> i64) -> Metrics {
        let mut registry = Registry::with_prefix("clw_fortress");
        let enforcements = Family::<Labels, Counter>::default();
        registry.register(
            "enforcements",
            "Limits updates of owned and adopted containers, by kind, trigger and outcome",
            enforcements.clone(),
        );
        let drift_corrections = Counter::default();
        registry.register(
            "drift_corrections",
            "Limits that somebody loosened and the agent put back",
            drift_corrections.clone(),
        );
        let engine_reconnects = Counter::default();
        registry.register(
            "engine_reconnects",
            "Times the agent got the engine back after losing it",
            engine_reconnects.clone(),
        );
        let isolation_breaches = Counter::default();
        registry.register(
            "isolation_breaches",
            "Owned sandboxes the agent stopped because a bind source changed since they were created",
            isolation_breaches.clone(),
        );
        let engine_up = Gauge::default();
        registry.register(
            "engine_up",
            "1 while the agent is connected to the engine and watching its events",
            engine_up.clone(),
        );
        let events = Counter::default();
        registry.register(
            "engine_events",
            "Container events received from the engine",
            events.clone(),
        );
        let event_lag = lag_histogram();
        registry.register(
            "event_lag_seconds",
            "Time from the engine stamping an event to the agent handling it",
            event_lag.clone(),
        );
        let job_runs = Family::<Labels, Counter>::default();
        registry.register(
            "job_runs",
            "Periodic job runs by job and outcome (ok, failed, skipped)",
            job_runs.clone(),
        );
        let job_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(job_histogram);
        registry.register(
            "job_duration_seconds",
            "How long periodic job runs took",
            job_duration.clone(),
        );
        let reloads = Family::<Labels, Counter>::default();
        registry.register(
            "manifest_reloads",
            "Manifest reloads on SIGHUP by outcome (ok, failed)",
            reloads.clone(),
        );
        let egress_denied = Family::<Labels, Counter>::default();
        registry.register(
            "egress_denied",
            "Connections the egress proxy refused, by sandbox and requested host",
            egress_denied.clone(),
        );
        let egress_allowed_bytes = Family::<Labels, Counter>::default();
        registry.register(
            "egress_allowed_bytes",
            "Bytes the egress proxy carried for allowed connections (both ways), by sandbox",
            egress_allowed_bytes.clone(),
        );
        let egress_sentinel_refused = Family::<Labels, Counter>::default();
        registry.register(
            "egress_sentinel_refused",
            "Requests the egress proxy refused because they carried a brokered secret's \
             sentinel to a host or place it is not bound to, by sandbox",
            egress_sentinel_refused.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        registry.register(
            "build_info",
            "The agent's version; always 1",
            build_info.clone(),
        );
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        let sample = Arc::new(SampleSeries {
            sample: Default::default(),
            clock,
        });
        registry.register_collector(Box::new(sample.clone()));
        // Every combination exists from the start at zero, so a dashboard's rate() sees the
        // first increment instead of a series appearing out of nowhere.
        for kind in ["owned", "adopted"] {
            for trigger in ["sweep", "event"] {
                for outcome in ["ok", "failed"] {
                    let _ = enforcements.get_or_create(&vec![
                        ("kind", kind.to_string()),
                        ("trigger", trigger.to_string()),
                        ("outcome", outcome.to_string()),
                    ]);
                }
            }
        }
        Metrics {
            registry,
            enforcements,
            drift_corrections,
            engine_reconnects,
            isolation_breaches,
            engine_up,
            events,
            event_lag,
            job_runs,
            job_duration,
            reloads,
            egress_denied,
            egress_allowed_bytes,
            egress_sentinel_refused,
            egress_denied_series: Default::default(),
            engine_connected: AtomicBool::new(false),
            last_sweep_ms: AtomicI64::new(0),
            sample,
        }
    }

    /// Replaces the per-sandbox series with those of `sample` (series of containers no longer
    /// in it are gone from the next scrape).
    pub fn set_sample(&self, sample: Sample) {
        *self.sample.sample.lock() = Some(sample);
    }

    /// The containers the current per-sandbox series report.
    pub fn sampled(&self) -> std::collections::BTreeSet<String> {
        self.sample
            .sample
            .lock()
            .as_ref()
            .map(Sample::reported)
            .unwrap_or_default()
    }

    pub fn enforcement(&self, e: &crate::enforce::Enforcement) {
        self.enforcements
            .get_or_create(&vec![
                ("kind", e.kind.as_str().to_string()),
                ("trigger", e.trigger.to_string()),
                ("outcome", if e.ok { "ok" } else { "failed" }.to_string()),
            ])
            .inc();
        if e.ok && e.drift {
            self.drift_corrections.inc();
        }
    }

    pub fn reconnected(&self) {
        self.engine_reconnects.inc();
    }

    pub fn isolation_breach(&self) {
        self.isolation_breaches.inc();
    }

    pub fn set_engine_up(&self, up: bool) {
        self.engine_up.set(i64::from(up));
        self.engine_connected.store(up, Ordering::SeqCst);
        if !up {
            // Ready again only after a sweep over the reconnected engine.
            self.last_sweep_ms.store(0, Ordering::SeqCst);
        }
    }

    /// A limits sweep ran over the connected engine (whatever it found).
    pub fn sweep_finished(&self, now_ms: i64) {
        self.last_sweep_ms.store(now_ms.max(1), Ordering::SeqCst);
    }

    /// Ready: the engine is connected and a limits sweep ran since it was; the age of that
    /// sweep in ms.
    pub fn readiness(&self, now_ms: i64) -> (bool, Option<i64>) {
        let last = self.last_sweep_ms.load(Ordering::SeqCst);
        let age = (last > 0).then(|| (now_ms - last).max(0));
        (self.engine_is_up() && age.is_some(), age)
    }

    pub fn engine_is_up(&self) -> bool {
        self.engine_connected.load(Ordering::SeqCst)
    }

    pub fn event(&self, lag_seconds: f64) {
        self.events.inc();
        self.event_lag.observe(lag_seconds);
    }

    /// One job run; `took` is `None` for a skipped run.
    pub fn job_run(&self, job: &str, outcome: &str, took: Option<Duration>) {
        self.job_runs
            .get_or_create(&vec![
                ("job", job.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        if let Some(t) = took {
            self.job_duration
                .get_or_create(&vec![("job", job.to_string())])
                .observe(t.as_secs_f64());
        }
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&vec![(
                "outcome",
                if ok { "ok" } else { "failed" }.to_string(),
            )])
            .inc();
    }

    /// One refused egress connection.
    pub fn egress_denied(&self, sandbox: &str, host: &str) {
        let host = {
            let mut seen = self.egress_denied_series.lock();
            let key = (sandbox.to_string(), host.to_string());
            if seen.contains(&key) || seen.len() < EGRESS_DENIED_HOSTS_MAX {
                seen.insert(key);
                host
            } else {
                "_other"
            }
        };
        self.egress_denied
            .get_or_create(&vec![
                ("sandbox", sandbox.to_string()),
                ("host", host.to_string()),
            ])
            .inc();
    }

    /// One request refused for carrying a sentinel where it may not go: an isolation breach.
    pub fn egress_sentinel_refused(&self, sandbox: &str) {
        self.egress_sentinel_refused
            .get_or_create(&vec![("sandbox", sandbox.to_string())])
            .inc();
    }

    /// Bytes carried for an allowed egress connection.
    pub fn egress_bytes(&self, sandbox: &str, bytes: u64) {
        self.egress_allowed_bytes
            .get_or_create(&vec![("sandbox", sandbox.to_string())])
            .inc_by(bytes);
    }

    /// The exposition text in OpenMetrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The per-sandbox series: rendered from the newest [`Sample`] on each scrape (a
/// prometheus-client collector), so the series of a container that is gone simply stop, and
/// the counters, totals kept in the state database, are never set backwards by hand.
#[derive(Debug)]
struct SampleSeries {
    sample: parking_lot::Mutex<Option<Sample>>,
    /// Unix ms now: ages are computed at scrape time from stored timestamps.
    clock: fn() -> i64,
}

/// One metric family of the sample: HELP/TYPE/UNIT, then its samples; nothing at all when it
/// has none (an agent without backups shows no empty backup families).
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric_type: MetricType,
    rows: Vec<(Labels, M)>,
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, unit.as_ref(), metric_type)?;
    for (labels, metric) in rows {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SampleSeries {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let guard = self.sample.lock();
        let Some(s) = guard.as_ref() else {
            return Ok(());
        };
        let now_ms = (self.clock)();
        let sbx = |name: &str, kind: Option<crate::enforce::Kind>| -> Labels {
            vec![
                ("fortress", s.fortress.clone()),
                ("sandbox", name.to_string()),
                ("kind", kind.map_or("owned", |k| k.as_str()).to_string()),
            ]
        };
        let gauges = |f: &dyn Fn(&super::sample::SandboxSample) -> Option<i64>| {
            s.sandboxes
                .iter()
                .filter_map(|x| f(x).map(|v| (sbx(&x.name, x.kind), ConstGauge::new(v))))
                .collect::<Vec<_>>()
        };
        use MetricType::{Counter as C, Gauge as G};
        family(
            &mut enc,
            "sandbox_memory_usage",
            "Memory the sandbox's cgroup uses now (page cache included), read from the host",
            Some(Unit::Bytes),
            G,
            gauges(&|x| x.memory_bytes),
        )?;
        family(
            &mut enc,
            "sandbox_memory_limit",
            "The sandbox's memory limit in force; absent when unlimited",
            Some(Unit::Bytes),
            G,
            gauges(&|x| x.memory_limit_bytes),
        )?;
        family(
            &mut enc,
            "sandbox_pids",
            "Processes and threads in the sandbox's cgroup now, read from the host",
            None,
            G,
            gauges(&|x| x.pids),
        )?;
        family(
            &mut enc,
            "sandbox_pids_limit",
            "The sandbox's pids limit in force; absent when unlimited",
            None,
            G,
            gauges(&|x| x.pids_limit),
        )?;
        family(
            &mut enc,
            "sandbox_cpu_limit",
            "The sandbox's CPU limit in force, in CPUs; absent when unlimited",
            Some(Unit::Other("cores".into())),
            G,
            s.sandboxes
                .iter()
                .filter_map(|x| {
                    x.cpu_limit_cores
                        .map(|v| (sbx(&x.name, x.kind), ConstGauge::new(v)))
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "sandbox_oom_kills",
            "OOM kills in the sandbox: those the agent diagnosed plus the running container's cgroup counter",
            None,
            C,
            s.sandboxes
                .iter()
                .map(|x| (sbx(&x.name, x.kind), ConstCounter::new(x.oom_kills)))
                .collect(),
        )?;
        family(
            &mut enc,
            "sandbox_heal_restarts",
            "Restart attempts heal made of the declared sandbox (state database)",
            None,
            C,
            s.sandboxes
                .iter()
                .filter_map(|x| {
                    x.heal_restarts
                        .map(|v| (sbx(&x.name, x.kind), ConstCounter::new(v)))
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "sandbox_quarantined",
            "1 while heal holds the declared sandbox in quarantine",
            None,
            G,
            gauges(&|x| x.quarantined.map(i64::from)),
        )?;
        family(
            &mut enc,
            "sandbox_verify_passed",
            "1 if the sandbox's last verify run passed, 0 if it failed; absent before the first",
            None,
            G,
            gauges(&|x| x.verify.map(|(ok, _)| i64::from(ok))),
        )?;
        family(
            &mut enc,
            "sandbox_verify_timestamp",
            "Unix time of the sandbox's last verify run",
            Some(Unit::Seconds),
            G,
            gauges(&|x| x.verify.map(|(_, ms)| ms / 1000)),
        )?;
        family(
            &mut enc,
            "sandbox_series_dropped",
            "Containers an adopt rule or a sandbox's labels may cover that were left without per-sandbox series (over the cap)",
            None,
            G,
            vec![(
                vec![("fortress", s.fortress.clone())],
                ConstGauge::new(i64::try_from(s.dropped).unwrap_or(i64::MAX)),
            )],
        )?;
        let check = |name: &str| -> Labels {
            vec![
                ("fortress", s.fortress.clone()),
                ("check", name.to_string()),
            ]
        };
        family(
            &mut enc,
            "health_check_restarts",
            "Restart attempts heal made for the health check (state database)",
            None,
            C,
            s.checks
                .iter()
                .map(|c| (check(&c.name), ConstCounter::new(c.restarts)))
                .collect(),
        )?;
        family(
            &mut enc,
            "health_check_quarantined",
            "1 while heal holds the health check's target in quarantine",
            None,
            G,
            s.checks
                .iter()
                .map(|c| (check(&c.name), ConstGauge::new(i64::from(c.quarantined))))
                .collect(),
        )?;
        let backup = |entry: &str| -> Labels {
            vec![
                ("fortress", s.fortress.clone()),
                ("backup", entry.to_string()),
            ]
        };
        family(
            &mut enc,
            "backup_last_age",
            "Age of the backup entry's newest good snapshot; absent before the first",
            Some(Unit::Seconds),
            G,
            s.backups
                .iter()
                .map(|b| {
                    let age = ((now_ms - b.created_ms) / 1000).max(0);
                    (backup(&b.entry), ConstGauge::new(age))
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "backup_last_size",
            "Size of the backup entry's newest good snapshot",
            Some(Unit::Bytes),
            G,
            s.backups
                .iter()
                .filter_map(|b| {
                    b.size_bytes.map(|v| {
                        (
                            backup(&b.entry),
                            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)),
                        )
                    })
                })
                .collect(),
        )?;
        Ok(())
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the client's `Accept` header asks for OpenMetrics.
fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let media = fields.next().unwrap_or("");
            // `q=0` means "not this one".
            let refused = fields.any(|f| matches!(f, "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
    })
}

/// OpenMetrics text -> Prometheus text format 0.0.4: counters are declared under their
/// sample name (`x_total`), and `# UNIT` and `# EOF` do not exist there.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let declared = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match declared {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The answer to one request. Pure apart from reading the metrics and the clock.
pub fn respond(
    metrics: &Metrics,
    method: &Method,
    path: &str,
    accept: Option<&str>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("a static response is valid")
    };
    if method != Method::GET && method != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
    }
    match path {
        "/metrics" if wants_openmetrics(accept) => {
            reply(StatusCode::OK, OPENMETRICS, metrics.render())
        }
        "/metrics" => reply(
            StatusCode::OK,
            PROMETHEUS_TEXT,
            to_prometheus_text(&metrics.render()),
        ),
        // Readiness: the agent can do its job now: the engine is connected and the limits
        // sweep ran over it since it connected. 503 otherwise, so a load balancer or an
        // operator's check sees an agent that is alive but blind.
        "/readyz" => {
            let now = chrono::Utc::now().timestamp_millis();
            let (ready, age) = metrics.readiness(now);
            let engine = if metrics.engine_is_up() { "up" } else { "down" };
            let sweep = age.map_or("none since the engine connected".to_string(), |ms| {
                format!("{} s ago", ms / 1000)
            });
            reply(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "text/plain",
                format!(
                    "{}\nengine: {engine}\nlast limits sweep: {sweep}\n",
                    if ready { "ready" } else { "not ready" }
                ),
            )
        }
        // Liveness of the agent itself: it answers while its runtime runs. The engine's state
        // is reported, not judged: an engine restart is the agent's job to ride out, and a
        // restart of the agent would not bring the engine back.
        "/healthz" => reply(
            StatusCode::OK,
            "text/plain",
            format!(
                "ok\nengine: {}\n",
                if metrics.engine_is_up() { "up" } else { "down" }
            ),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Binds `addr` now (so a taken port fails the daemon's start, not silently later).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves until the task is aborted. One task per connection; a broken client only ends its
/// own connection.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    // Out of file descriptors, accept fails ten times a second until some are freed.
    let warnings = super::ratelimit::Warnings::default();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => {
                if let Some(note) = warnings.cleared("accept") {
                    tracing::info!("metrics endpoint: accepting again; {note}");
                }
                c
            }
            Err(e) => {
                let text = format!("metrics endpoint: accept failed: {e}");
                if let Some(note) = warnings.allow("accept", &text) {
                    tracing::warn!("{text}{note}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let accept = req
                    .headers()
                    .get(hyper::header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let r = respond(&metrics, req.method(), req.uri().path(), accept);
                async move { Ok::<_, Infallible>(r) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!("metrics endpoint: connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_family_is_exported_with_its_stable_name() {
        let m = Metrics::new();
        m.reconnected();
        m.isolation_breach();
        m.event(0.002);
        m.job_run("limits", "ok", Some(Duration::from_millis(30)));
        m.egress_denied("sbx", "evil.test");
        m.egress_bytes("sbx", 1500);
        m.egress_sentinel_refused("sbx");
        let text = m.render();
        for name in [
            "clw_fortress_enforcements_total",
            "clw_fortress_drift_corrections_total",
            "clw_fortress_engine_reconnects_total 1",
            "clw_fortress_isolation_breaches_total 1",
            "clw_fortress_engine_up",
            "clw_fortress_engine_events_total 1",
            "clw_fortress_event_lag_seconds_bucket",
            r#"clw_fortress_job_runs_total{job="limits",outcome="ok"} 1"#,
            r#"clw_fortress_job_duration_seconds_count{job="limits"} 1"#,
            r#"clw_fortress_egress_denied_total{sandbox="sbx",host="evil.test"} 1"#,
            r#"clw_fortress_egress_allowed_bytes_total{sandbox="sbx"} 1500"#,
            r#"clw_fortress_egress_sentinel_refused_total{sandbox="sbx"} 1"#,
        ] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
    }

    #[test]
    fn egress_denied_host_labels_are_capped() {
        let m = Metrics::new();
        for i in 0..EGRESS_DENIED_HOSTS_MAX + 5 {
            m.egress_denied("sbx", &format!("h{i}.test"));
        }
        m.egress_denied("sbx", "h0.test");
        let text = m.render();
        assert!(
            text.contains(r#"{sandbox="sbx",host="_other"} 5"#),
            "{text}"
        );
        assert!(text.contains(r#"{sandbox="sbx",host="h0.test"} 2"#));
    }

    fn sample() -> Sample {
        use super::super::sample::{BackupSample, CheckSample, SandboxSample};
        use crate::enforce::Kind;
        Sample {
            fortress: "f".into(),
            sandboxes: vec![
                SandboxSample {
                    name: "sbx".into(),
                    kind: Some(Kind::Owned),
                    memory_bytes: Some(3 << 20),
                    memory_limit_bytes: Some(64 << 20),
                    pids: Some(2),
                    pids_limit: Some(64),
                    cpu_limit_cores: Some(0.5),
                    oom_kills: 1,
                    heal_restarts: Some(2),
                    quarantined: Some(false),
                    verify: Some((true, 1_700_000_000_000)),
                },
                SandboxSample {
                    name: "gw".into(),
                    kind: Some(Kind::Adopted),
                    pids_limit: Some(32),
                    ..Default::default()
                },
            ],
            checks: vec![CheckSample {
                name: "web".into(),
                restarts: 3,
                quarantined: true,
            }],
            backups: vec![BackupSample {
                entry: "memory".into(),
                created_ms: 1_000_000 - 90_000,
                size_bytes: Some(4096),
            }],
            dropped: 0,
        }
    }

    #[test]
    fn the_per_sandbox_series_follow_the_newest_sample() {
        let m = Metrics::with_clock(|| 1_000_000);
        assert!(
            !m.render().contains("clw_fortress_sandbox_"),
            "no sample yet"
        );
        m.set_sample(sample());
        let text = m.render();
        let sbx = r#"{fortress="f",sandbox="sbx",kind="owned"}"#;
        for line in [
            format!("clw_fortress_sandbox_memory_usage_bytes{sbx} 3145728"),
            format!("clw_fortress_sandbox_memory_limit_bytes{sbx} 67108864"),
            format!("clw_fortress_sandbox_pids{sbx} 2"),
            format!("clw_fortress_sandbox_pids_limit{sbx} 64"),
            format!("clw_fortress_sandbox_cpu_limit_cores{sbx} 0.5"),
            format!("clw_fortress_sandbox_oom_kills_total{sbx} 1"),
            format!("clw_fortress_sandbox_heal_restarts_total{sbx} 2"),
            format!("clw_fortress_sandbox_quarantined{sbx} 0"),
            format!("clw_fortress_sandbox_verify_passed{sbx} 1"),
            format!("clw_fortress_sandbox_verify_timestamp_seconds{sbx} 1700000000"),
            r#"clw_fortress_sandbox_pids_limit{fortress="f",sandbox="gw",kind="adopted"} 32"#
                .to_string(),
            r#"clw_fortress_sandbox_series_dropped{fortress="f"} 0"#.to_string(),
            r#"clw_fortress_health_check_restarts_total{fortress="f",check="web"} 3"#.to_string(),
            r#"clw_fortress_health_check_quarantined{fortress="f",check="web"} 1"#.to_string(),
            r#"clw_fortress_backup_last_age_seconds{fortress="f",backup="memory"} 90"#.to_string(),
            r#"clw_fortress_backup_last_size_bytes{fortress="f",backup="memory"} 4096"#.to_string(),
            "# UNIT clw_fortress_sandbox_memory_usage_bytes bytes".to_string(),
        ] {
            assert!(text.contains(&line), "{line} missing in:\n{text}");
        }
        // What is not known has no series (the adopted container's usage, unlimited limits).
        assert!(!text.contains(r#"clw_fortress_sandbox_pids{fortress="f",sandbox="gw""#));
        assert!(!text.contains(r#"sandbox_verify_passed{fortress="f",sandbox="gw""#));
        let prom = to_prometheus_text(&text);
        assert!(prom.contains("# TYPE clw_fortress_sandbox_oom_kills_total counter"));
        assert!(!prom.contains("# UNIT"));
        assert_eq!(
            m.sampled(),
            ["gw".to_string(), "sbx".to_string()].into_iter().collect()
        );

        // The adopted container is gone: so are its series.
        let mut next = sample();
        next.sandboxes.retain(|s| s.name != "gw");
        m.set_sample(next);
        assert!(!m.render().contains(r#"sandbox="gw""#));
    }

    #[test]
    fn routes_answer_metrics_health_and_not_found() {
        let m = Metrics::new();
        let get = |p: &str| respond(&m, &Method::GET, p, None).status();
        assert_eq!(get("/metrics"), StatusCode::OK);
        assert_eq!(get("/healthz"), StatusCode::OK);
        assert_eq!(get("/"), StatusCode::NOT_FOUND);
        assert_eq!(
            respond(&m, &Method::POST, "/metrics", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn readyz_needs_the_engine_and_a_sweep_since_it_connected() {
        let m = Metrics::new();
        let ready = |m: &Metrics| respond(m, &Method::GET, "/readyz", None).status();
        assert_eq!(ready(&m), StatusCode::SERVICE_UNAVAILABLE);
        m.set_engine_up(true);
        assert_eq!(ready(&m), StatusCode::SERVICE_UNAVAILABLE, "no sweep yet");
        m.sweep_finished(chrono::Utc::now().timestamp_millis());
        assert_eq!(ready(&m), StatusCode::OK);
        m.set_engine_up(false);
        assert_eq!(ready(&m), StatusCode::SERVICE_UNAVAILABLE);
        m.set_engine_up(true);
        assert_eq!(
            ready(&m),
            StatusCode::SERVICE_UNAVAILABLE,
            "reconnected, no sweep"
        );
        assert_eq!(m.readiness(5_000), (false, None));
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        let m = Metrics::new();
        let ctype = |accept| {
            respond(&m, &Method::GET, "/metrics", accept).headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string()
        };
        assert!(ctype(None).starts_with("text/plain; version=0.0.4"));
        assert!(ctype(Some("*/*")).starts_with("text/plain; version=0.0.4"));
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(ctype(Some(prometheus)).starts_with("application/openmetrics-text"));
        assert!(
            ctype(Some("application/openmetrics-text;q=0, text/plain")).starts_with("text/plain")
        );
    }

    #[test]
    fn the_prometheus_text_declares_counters_by_their_sample_name() {
        let m = Metrics::new();
        m.reconnected();
        let text = to_prometheus_text(&m.render());
        assert!(
            text.contains("# HELP clw_fortress_engine_reconnects_total "),
            "{text}"
        );
        assert!(
            text.contains("# TYPE clw_fortress_engine_reconnects_total counter"),
            "{text}"
        );
        assert!(
            text.contains("clw_fortress_engine_reconnects_total 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE clw_fortress_engine_up gauge"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.contains(&format!(
            r#"clw_fortress_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )));
    }
}
