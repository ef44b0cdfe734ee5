//! Health checks and liveness probes, what `heal` acts on: each probe (http or exec) and
//! schedule (`every` or `cron`) exactly once, durations above zero, counts of at least one,
//! backoff bounds in order, and `insecureTls` only towards a loopback host.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::super::raw::{RawHealth, RawLiveness, Scalar};
use super::super::units::parse_duration;
use super::super::{HealthCheck, Liveness, Probe, RestartTarget, Schedule};
use super::operations::check_cron;
use super::Report;

fn duration(
    r: &mut Report,
    file: &Path,
    field: &str,
    raw: Option<&Scalar>,
    default: Duration,
) -> Option<Duration> {
    match raw {
        None => Some(default),
        Some(v) => match parse_duration(&v.0) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                r.invalid(file, field, &v.0, "must be above zero");
                None
            }
            Err(m) => {
                r.invalid(file, field, &v.0, m);
                None
            }
        },
    }
}

fn at_least_one(r: &mut Report, file: &Path, field: &str, value: Option<u32>, default: u32) -> u32 {
    let n = value.unwrap_or(default);
    if n == 0 {
        r.invalid(file, field, "0", "must be at least 1");
    }
    n
}

pub(super) fn liveness(
    r: &mut Report,
    file: &Path,
    prefix: &str,
    raw: &RawLiveness,
) -> Option<Liveness> {
    let every = duration(
        r,
        file,
        &format!("{prefix}.every"),
        Some(&raw.every),
        Duration::ZERO,
    );
    let timeout = duration(
        r,
        file,
        &format!("{prefix}.timeout"),
        raw.timeout.as_ref(),
        Duration::from_secs(10),
    );
    if raw.exec.is_empty() {
        r.invalid(
            file,
            format!("{prefix}.exec"),
            "",
            "the probe command is empty",
        );
    }
    let failures = at_least_one(r, file, &format!("{prefix}.failures"), raw.failures, 3);
    Some(Liveness {
        every: every?,
        exec: raw.exec.clone(),
        timeout: timeout?,
        failures,
    })
}

/// The host part of an `http(s)://` URL, without brackets or port.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn health_checks(r: &mut Report, file: &Path, raw: &[RawHealth]) -> Vec<HealthCheck> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let prefix = format!("health[{i}]");
        if h.name.trim().is_empty() || !names.insert(h.name.clone()) {
            r.invalid(
                file,
                format!("{prefix}.name"),
                &h.name,
                "health check names must be non-empty and unique",
            );
        }
        let probe = match (&h.http, &h.exec) {
            (Some(http), None) => {
                let host = url_host(&http.url);
                if host.is_none_or(str::is_empty) {
                    r.invalid(
                        file,
                        format!("{prefix}.http.url"),
                        &http.url,
                        "must be an http:// or https:// URL with a host",
                    );
                }
                if http.insecure_tls && !host.is_some_and(is_loopback) {
                    r.invalid(
                        file,
                        format!("{prefix}.http.insecureTls"),
                        "true",
                        "insecureTls is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost)",
                    );
                }
                duration(
                    r,
                    file,
                    &format!("{prefix}.http.timeout"),
                    http.timeout.as_ref(),
                    Duration::from_secs(5),
                )
                .map(|timeout| Probe::Http {
                    url: http.url.clone(),
                    insecure_tls: http.insecure_tls,
                    timeout,
                })
            }
            (None, Some(exec)) => {
                if exec.container.trim().is_empty() || exec.command.is_empty() {
                    r.invalid(
                        file,
                        format!("{prefix}.exec"),
                        &exec.container,
                        "an exec probe needs a container and a command",
                    );
                }
                duration(
                    r,
                    file,
                    &format!("{prefix}.exec.timeout"),
                    exec.timeout.as_ref(),
                    Duration::from_secs(10),
                )
                .map(|timeout| Probe::Exec {
                    container: exec.container.clone(),
                    command: exec.command.clone(),
                    timeout,
                })
            }
            _ => {
                r.invalid(
                    file,
                    &prefix,
                    &h.name,
                    "a health check has exactly one of `http` and `exec`",
                );
                None
            }
        };
        let schedule = match (&h.every, &h.cron) {
            (Some(every), None) => duration(
                r,
                file,
                &format!("{prefix}.every"),
                Some(every),
                Duration::ZERO,
            )
            .map(Schedule::Every),
            (None, Some(expr)) => {
                check_cron(r, file, &format!("{prefix}.cron"), expr).map(Schedule::Cron)
            }
            _ => {
                r.invalid(
                    file,
                    &prefix,
                    &h.name,
                    "a health check has exactly one of `every` and `cron`",
                );
                None
            }
        };
        let failures = at_least_one(r, file, &format!("{prefix}.failures"), h.failures, 3);
        let restart = h.restart.as_ref().and_then(|rs| {
            match (&rs.systemd_unit, &rs.container) {
                (Some(unit), None) => Some(RestartTarget::SystemdUnit {
                    unit: unit.clone(),
                    user: rs.user_unit.unwrap_or(false),
                }),
                (None, Some(c)) if rs.user_unit.is_none() => Some(RestartTarget::Container(c.clone())),
                _ => {
                    r.invalid(
                        file,
                        format!("{prefix}.restart"),
                        "",
                        "restart has exactly one of `systemdUnit` (with optional `userUnit`) and `container`",
                    );
                    None
                }
            }
        });
        let backoff = h.backoff.as_ref();
        let initial = duration(
            r,
            file,
            &format!("{prefix}.backoff.initial"),
            backoff.and_then(|b| b.initial.as_ref()),
            Duration::from_secs(10),
        );
        let max = duration(
            r,
            file,
            &format!("{prefix}.backoff.max"),
            backoff.and_then(|b| b.max.as_ref()),
            Duration::from_secs(300),
        );
        if let (Some(i), Some(m)) = (initial, max) {
            if i > m {
                r.invalid(
                    file,
                    format!("{prefix}.backoff"),
                    "",
                    "backoff.initial is above backoff.max",
                );
            }
        }
        let quarantine = h.quarantine.as_ref();
        let restarts = at_least_one(
            r,
            file,
            &format!("{prefix}.quarantine.restarts"),
            quarantine.and_then(|q| q.restarts),
            5,
        );
        let within = duration(
            r,
            file,
            &format!("{prefix}.quarantine.within"),
            quarantine.and_then(|q| q.within.as_ref()),
            Duration::from_secs(30 * 60),
        );
        if let (Some(probe), Some(schedule), Some(initial), Some(max), Some(within)) =
            (probe, schedule, initial, max, within)
        {
            out.push(HealthCheck {
                name: h.name.clone(),
                probe,
                schedule,
                failures,
                restart,
                backoff_initial: initial,
                backoff_max: max,
                quarantine_restarts: restarts,
                quarantine_within: within,
            });
        }
    }
    out
}
