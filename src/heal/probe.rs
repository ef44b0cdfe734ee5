//! The probes: HTTP(S) requests, commands executed in a container, and a sandbox's liveness
//! (running per inspect, the engine's own healthcheck status, the declared `liveness.exec`).
//!
//! A probe only observes and returns an [`Outcome`]; it never restarts anything. Failure
//! reasons are short, human-readable and free of secrets (no response bodies, no environment).

use std::time::Duration;

use super::decide::Outcome;
use crate::engine::{Container, Engine, ExecRequest};

/// What the sandbox's container looks like to the liveness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No such container: `apply` creates it, healing does not.
    Missing,
    /// Not running; `exit_code`, `oom` and when it last started (engine clock, Unix ms).
    Down {
        exit_code: i64,
        oom: bool,
        started_at_ms: Option<i64>,
    },
    /// Running; the engine's healthcheck says `unhealthy` (with its last output, if any).
    EngineUnhealthy(String),
    Running,
}

/// Classifies an inspect result. Pure.
pub fn observe(inspect: Option<&Container>) -> Observed {
    let Some(c) = inspect else {
        return Observed::Missing;
    };
    let st = &c.state;
    if !st.running {
        return Observed::Down {
            exit_code: st.exit_code.unwrap_or(-1),
            oom: st.oom_killed,
            started_at_ms: st.started_at.as_deref().and_then(parse_engine_time),
        };
    }
    // `starting` (inside the start period) and `none` (no healthcheck) are not failures.
    if let Some(h) = st.health.as_ref().filter(|h| h.unhealthy()) {
        let last = h
            .last_output
            .as_deref()
            .map(|o| one_line(o, 120))
            .unwrap_or_default();
        return Observed::EngineUnhealthy(last);
    }
    Observed::Running
}

/// RFC 3339 as the engine writes it (`2024-05-01T10:00:00.123456789Z`); the zero time of a
/// never-started container is `None`.
pub fn parse_engine_time(s: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let ms = t.timestamp_millis();
    (ms > 0).then_some(ms)
}

fn one_line(s: &str, max: usize) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line
    }
}

/// True for `localhost` and loopback addresses (127.0.0.0/8, ::1).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// GET `url`; healthy on a status from 200 to 399 within `timeout`. Redirects are not followed
/// (a redirect could leave the loopback host that `insecure_tls` was allowed for) and proxies are
/// not used (a health URL is local). `insecure_tls` is refused for anything but a loopback host,
/// again here although the manifest already checks it, so no other caller can bypass the rule.
pub async fn http(url: &str, insecure_tls: bool, timeout: Duration) -> Outcome {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Outcome::Failed(format!("bad URL {url}: {e}")),
    };
    if insecure_tls && !parsed.host_str().is_some_and(is_loopback_host) {
        return Outcome::Failed(format!(
            "insecureTls refused for {url}: only loopback hosts may skip certificate checks"
        ));
    }
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .danger_accept_invalid_certs(insecure_tls)
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot build the HTTP client: {e}")),
    };
    match client.get(parsed).send().await {
        Ok(resp) => {
            let status = resp.status();
            if (200..400).contains(&status.as_u16()) {
                Outcome::Healthy
            } else {
                Outcome::Failed(format!("HTTP {}", status.as_u16()))
            }
        }
        Err(e) if e.is_timeout() => Outcome::Failed(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
        Err(e) => Outcome::Failed(one_line(&crate::report::chain(&e), 200)),
    }
}

/// Runs `command` in `container`; healthy when it exits 0 within `timeout`. A command that
/// outlives the timeout keeps running in the container (the engine API cannot kill an exec);
/// the probe counts it as a failure all the same.
pub async fn exec<E: Engine>(
    engine: &E,
    container: &str,
    command: &[String],
    timeout: Duration,
) -> Outcome {
    let req = ExecRequest {
        cmd: command.to_vec(),
        ..Default::default()
    };
    match tokio::time::timeout(timeout, engine.exec(container, &req)).await {
        Err(_) => Outcome::Failed(format!(
            "{:?} did not finish within {}",
            command.first().map(String::as_str).unwrap_or(""),
            humantime::format_duration(timeout)
        )),
        Ok(Err(e)) => Outcome::Failed(one_line(&crate::report::chain(&e), 200)),
        Ok(Ok(out)) if out.exit_code == 0 => Outcome::Healthy,
        Ok(Ok(out)) => {
            let err = one_line(&out.stderr_str(), 120);
            Outcome::Failed(if err.is_empty() {
                format!("exit code {}", out.exit_code)
            } else {
                format!("exit code {}: {err}", out.exit_code)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::container::Health;
    use crate::engine::RunState;

    fn container(state: RunState) -> Container {
        Container {
            state,
            ..Default::default()
        }
    }

    #[test]
    fn inspect_results_classify_into_liveness_observations() {
        let running = RunState {
            running: true,
            ..Default::default()
        };
        let with_health = |status: &str| RunState {
            health: Some(Health {
                status: status.into(),
                last_output: Some("curl: (7) refused\n".into()),
            }),
            ..running.clone()
        };
        let cases = [
            (None, Observed::Missing),
            (Some(container(running.clone())), Observed::Running),
            (Some(container(with_health("healthy"))), Observed::Running),
            (Some(container(with_health("starting"))), Observed::Running),
            (
                Some(container(with_health("unhealthy"))),
                Observed::EngineUnhealthy("curl: (7) refused".into()),
            ),
            (
                Some(container(RunState {
                    running: false,
                    exit_code: Some(137),
                    oom_killed: true,
                    started_at: Some("2024-05-01T10:00:00.5Z".into()),
                    ..Default::default()
                })),
                Observed::Down {
                    exit_code: 137,
                    oom: true,
                    started_at_ms: Some(1_714_557_600_500),
                },
            ),
            (
                Some(container(RunState {
                    running: false,
                    exit_code: Some(0),
                    started_at: Some("0001-01-01T00:00:00Z".into()),
                    ..Default::default()
                })),
                Observed::Down {
                    exit_code: 0,
                    oom: false,
                    started_at_ms: None,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(observe(input.as_ref()), want, "{input:?}");
        }
    }

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        for (host, want) in [
            ("localhost", true),
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("[::1]", true),
            ("::1", true),
            ("10.0.0.1", false),
            ("example.com", false),
            ("localhost.example.com", false),
        ] {
            assert_eq!(is_loopback_host(host), want, "{host}");
        }
    }

    #[tokio::test]
    async fn insecure_tls_is_refused_for_a_remote_host_without_any_request() {
        let out = http("https://192.0.2.1/health", true, Duration::from_millis(100)).await;
        let Outcome::Failed(why) = out else {
            panic!("{out:?}")
        };
        assert!(why.contains("insecureTls refused"), "{why}");
    }

    #[tokio::test]
    async fn a_closed_loopback_port_is_a_failure_not_a_panic() {
        // Bind then drop: the port is very likely closed afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = http(
            &format!("http://127.0.0.1:{port}/"),
            false,
            Duration::from_secs(2),
        )
        .await;
        assert!(!out.is_healthy());
    }
}
