//! Rendering of verify results: text (grouped per sandbox, summary last), JSON (an array of
//! `{sandbox, probe, outcome, detail}`) and JUnit XML for CI systems. Pure; no I/O.
//!
//! Details never hold secret values (the probes guarantee it); this module only formats.

use std::fmt::Write as _;

use super::{counts, Outcome, ProbeResult};

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Sandboxes in first-seen order with their results.
fn grouped(results: &[ProbeResult]) -> Vec<(&str, Vec<&ProbeResult>)> {
    let mut out: Vec<(&str, Vec<&ProbeResult>)> = Vec::new();
    for r in results {
        match out.iter_mut().find(|(s, _)| *s == r.sandbox) {
            Some((_, v)) => v.push(r),
            None => out.push((&r.sandbox, vec![r])),
        }
    }
    out
}

pub fn text(results: &[ProbeResult], colour: bool, allow_inconclusive: bool) -> String {
    let mut out = String::new();
    let width = results.iter().map(|r| r.probe.len()).max().unwrap_or(0);
    for (sandbox, rs) in grouped(results) {
        let (p, f, i) = counts(&rs.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "sandbox {sandbox}: {p} passed, {f} failed, {i} inconclusive"
        );
        for r in rs {
            let word = r.outcome.as_str();
            let shown = if colour {
                let c = match r.outcome {
                    Outcome::Pass => GREEN,
                    Outcome::Fail => RED,
                    Outcome::Inconclusive => YELLOW,
                };
                format!("{c}{word:<12}{RESET}")
            } else {
                format!("{word:<12}")
            };
            let _ = writeln!(out, "  {shown} {:<width$}  {}", r.probe, r.detail);
        }
    }
    let sandboxes = grouped(results).len();
    let (p, f, i) = counts(results);
    let verdict = if f == 0 && (i == 0 || allow_inconclusive) {
        "PASS"
    } else {
        "FAIL"
    };
    let note = if i > 0 && allow_inconclusive {
        " (inconclusive allowed)"
    } else if i > 0 {
        " (inconclusive counts as failure; --allow-inconclusive to accept)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "verify {verdict}: {sandboxes} sandbox(es), {} probes: {p} passed, {f} failed, {i} inconclusive{note}",
        results.len()
    );
    out
}

pub fn json(results: &[ProbeResult]) -> String {
    serde_json::to_string_pretty(results).expect("plain data serialises")
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one `<testsuite>` per sandbox, one `<testcase>` per probe. Inconclusive probes
/// are `<failure type="inconclusive">`, or `<skipped>` when inconclusive is allowed.
pub fn junit(results: &[ProbeResult], allow_inconclusive: bool) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let groups = grouped(results);
    let (_, f, i) = counts(results);
    let (all_fail, all_skip) = if allow_inconclusive {
        (f, i)
    } else {
        (f + i, 0)
    };
    let _ = writeln!(
        out,
        "<testsuites name=\"clw-fortress verify\" tests=\"{}\" failures=\"{all_fail}\" errors=\"0\" skipped=\"{all_skip}\">",
        results.len()
    );
    for (sandbox, rs) in groups {
        let fails = rs
            .iter()
            .filter(|r| {
                r.outcome == Outcome::Fail
                    || (!allow_inconclusive && r.outcome == Outcome::Inconclusive)
            })
            .count();
        let skips = rs
            .iter()
            .filter(|r| allow_inconclusive && r.outcome == Outcome::Inconclusive)
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skips}\">",
            xml_escape(sandbox),
            rs.len()
        );
        for r in rs {
            let name = xml_escape(&r.probe);
            let class = xml_escape(&format!("verify.{sandbox}"));
            let detail = xml_escape(&r.detail);
            match r.outcome {
                Outcome::Pass => {
                    let _ = writeln!(
                        out,
                        "    <testcase name=\"{name}\" classname=\"{class}\"><system-out>{detail}</system-out></testcase>"
                    );
                }
                Outcome::Inconclusive if allow_inconclusive => {
                    let _ = writeln!(
                        out,
                        "    <testcase name=\"{name}\" classname=\"{class}\"><skipped message=\"inconclusive: {detail}\"/></testcase>"
                    );
                }
                o => {
                    let _ = writeln!(
                        out,
                        "    <testcase name=\"{name}\" classname=\"{class}\"><failure type=\"{}\" message=\"{detail}\">{detail}</failure></testcase>",
                        o.as_str()
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ProbeResult> {
        let mk = |s: &str, p: &str, o, d: &str| ProbeResult {
            sandbox: s.into(),
            probe: p.into(),
            outcome: o,
            detail: d.into(),
        };
        vec![
            mk("a", "proc.non-root", Outcome::Pass, "uid 1000"),
            mk("a", "limits.pids", Outcome::Fail, "pids.max = max <&>"),
            mk("b", "net.none", Outcome::Inconclusive, "nc missing"),
        ]
    }

    #[test]
    fn text_groups_by_sandbox_and_ends_with_the_summary() {
        let t = text(&sample(), false, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "sandbox a: 1 passed, 1 failed, 0 inconclusive");
        assert!(lines[1].starts_with("  pass "), "{t}");
        assert!(lines[2].contains("limits.pids") && lines[2].contains("fail"));
        assert!(lines
            .last()
            .unwrap()
            .starts_with("verify FAIL: 2 sandbox(es), 3 probes"));
        assert!(!t.contains('\x1b'));
        assert!(text(&sample(), true, false).contains('\x1b'));
    }

    #[test]
    fn json_is_an_array_of_sandbox_probe_outcome_detail() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(v[1]["sandbox"], "a");
        assert_eq!(v[1]["probe"], "limits.pids");
        assert_eq!(v[1]["outcome"], "fail");
        assert_eq!(v[2]["outcome"], "inconclusive");
    }

    #[test]
    fn junit_escapes_details_and_skips_inconclusive_only_when_allowed() {
        let x = junit(&sample(), false);
        assert!(x.contains("pids.max = max &lt;&amp;&gt;"), "{x}");
        assert_eq!(x.matches("<failure").count(), 2);
        assert!(!x.contains("<skipped"));
        let x = junit(&sample(), true);
        assert_eq!(x.matches("<failure").count(), 1);
        assert_eq!(x.matches("<skipped").count(), 1);
        assert_eq!(x.matches("<testsuite ").count(), 2);
    }
}
