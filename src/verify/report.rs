//! Rendering of verify results: text (grouped per sandbox, summary last), a versioned JSON
//! document, JUnit XML and SARIF 2.1.0 for CI systems. Pure; no I/O.
//!
//! Details never hold secret values (the probes guarantee it); this module only formats.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use serde_sarif::sarif;

use super::catalogue::{self, CIS_BENCHMARK};
use super::{counts, passed, Outcome, ProbeResult};

/// What a report says about the run beyond its results.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// The fortress's name.
    pub fortress: &'a str,
    /// The manifest the fortress was loaded from; SARIF locates results in it.
    pub manifest: Option<&'a Path>,
    pub allow_inconclusive: bool,
}

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

/// The version of the JSON report's shape; a change that could break a reader bumps it.
pub const JSON_VERSION: u32 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    version: u32,
    fortress: &'a str,
    summary: Summary,
    results: Vec<JsonResult<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    passed: usize,
    failed: usize,
    inconclusive: usize,
    sandboxes: usize,
    probes: usize,
    /// `pass` or `fail`, as the exit status says (inconclusive counts per `allowInconclusive`).
    verdict: &'static str,
    /// The error code of a failed run (`clw-isolation-breach`, or `clw-sandbox-failure` when
    /// only operational probes failed); absent when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    allow_inconclusive: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResult<'a> {
    sandbox: &'a str,
    probe: &'a str,
    outcome: Outcome,
    detail: &'a str,
    /// CIS Docker Benchmark recommendations the probe checks (see [`catalogue`]).
    cis: &'static [&'static str],
}

fn summary(results: &[ProbeResult], allow_inconclusive: bool) -> Summary {
    let (p, f, i) = counts(results);
    let ok = passed(results, allow_inconclusive);
    Summary {
        passed: p,
        failed: f,
        inconclusive: i,
        sandboxes: grouped(results).len(),
        probes: results.len(),
        verdict: if ok { "pass" } else { "fail" },
        code: (!ok).then(|| super::failure_code(results).to_string()),
        allow_inconclusive,
    }
}

/// `{"version": 1, "fortress", "summary": {...}, "results": [{sandbox, probe, outcome, detail,
/// cis}]}`, keys in camelCase.
pub fn json(results: &[ProbeResult], about: &About) -> String {
    let doc = JsonReport {
        version: JSON_VERSION,
        fortress: about.fortress,
        summary: summary(results, about.allow_inconclusive),
        results: results
            .iter()
            .map(|r| JsonResult {
                sandbox: &r.sandbox,
                probe: &r.probe,
                outcome: r.outcome,
                detail: &r.detail,
                cis: catalogue::cis(&r.probe),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("plain data serialises")
}

/// The SARIF 2.1.0 schema, at the address code-scanning services and editors resolve.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// A path as a URI reference: relative paths stay relative (CI systems resolve them against
/// the checkout), absolute ones become `file://` URIs.
fn uri_of(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if path.is_absolute() {
        format!("file://{out}")
    } else {
        out
    }
}

fn message(t: impl Into<String>) -> sarif::MultiformatMessageString {
    sarif::MultiformatMessageString::builder().text(t).build()
}

/// One rule per probe id: its catalogue sentence as help, its CIS ids as properties and tags.
fn rule(id: &str) -> sarif::ReportingDescriptor {
    let entry = catalogue::entry(id);
    let help = entry
        .map(|e| e.help.to_string())
        .unwrap_or_else(|| format!("Probe {id} of clw-fortress verify (verify.md)."));
    let cis = catalogue::cis(id);
    let mut tags = vec!["security".to_string()];
    let mut props = BTreeMap::new();
    let full = if cis.is_empty() {
        help.clone()
    } else {
        tags.extend(cis.iter().map(|c| format!("CIS-Docker-Benchmark-{c}")));
        props.insert("cisBenchmark".to_string(), json!(CIS_BENCHMARK));
        format!("{help} {CIS_BENCHMARK}: {}.", cis.join(", "))
    };
    props.insert("cis".to_string(), json!(cis));
    sarif::ReportingDescriptor::builder()
        .id(id)
        .short_description(message(help))
        .full_description(message(full.clone()))
        .help(message(full))
        .default_configuration(
            sarif::ReportingConfiguration::builder()
                .level(json!("error"))
                .build(),
        )
        .properties(
            sarif::PropertyBag::builder()
                .tags(tags)
                .additional_properties(props)
                .build(),
        )
        .build()
}

/// SARIF 2.1.0: one run, one rule per probe id seen, one result per failed (`error`) or
/// inconclusive (`warning`) probe, located logically at the sandbox and physically in the
/// manifest that declares it.
pub fn sarif(results: &[ProbeResult], about: &About) -> String {
    let mut ids: Vec<&str> = Vec::new();
    for r in results {
        if !ids.contains(&r.probe.as_str()) {
            ids.push(&r.probe);
        }
    }
    let findings: Vec<sarif::Result> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| {
            let (level, message) = match r.outcome {
                Outcome::Fail => (sarif::ResultLevel::Error, r.detail.clone()),
                _ => (
                    sarif::ResultLevel::Warning,
                    format!("inconclusive: {}", r.detail),
                ),
            };
            let mut location = sarif::Location::builder()
                .logical_locations(vec![sarif::LogicalLocation::builder()
                    .name(r.sandbox.as_str())
                    .fully_qualified_name(format!("{}/{}", about.fortress, r.sandbox))
                    .kind("resource")
                    .build()])
                .build();
            location.physical_location = about.manifest.map(|m| {
                sarif::PhysicalLocation::builder()
                    .artifact_location(sarif::ArtifactLocation::builder().uri(uri_of(m)).build())
                    .build()
            });
            let mut props = BTreeMap::new();
            props.insert("sandbox".to_string(), json!(r.sandbox));
            props.insert("outcome".to_string(), json!(r.outcome.as_str()));
            props.insert("cis".to_string(), json!(catalogue::cis(&r.probe)));
            sarif::Result::builder()
                .rule_id(r.probe.as_str())
                .rule_index(ids.iter().position(|i| *i == r.probe).unwrap_or(0) as i64)
                .level(level)
                .message(
                    sarif::Message::builder()
                        .text(format!("{}: {message}", r.sandbox))
                        .build(),
                )
                .locations(vec![location])
                .properties(
                    sarif::PropertyBag::builder()
                        .additional_properties(props)
                        .build(),
                )
                .build()
        })
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name("clw-fortress")
        .version(env!("CARGO_PKG_VERSION"))
        .semantic_version(env!("CARGO_PKG_VERSION"))
        .rules(ids.iter().map(|id| rule(id)).collect::<Vec<_>>())
        .build();
    let mut run_props = BTreeMap::new();
    run_props.insert("fortress".to_string(), json!(about.fortress));
    run_props.insert(
        "summary".to_string(),
        serde_json::to_value(summary(results, about.allow_inconclusive))
            .expect("plain data serialises"),
    );
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .automation_details(
            sarif::RunAutomationDetails::builder()
                .id(format!("clw-fortress-verify/{}/", about.fortress))
                .build(),
        )
        .results(findings)
        .properties(
            sarif::PropertyBag::builder()
                .additional_properties(run_props)
                .build(),
        )
        .build();
    let log = sarif::Sarif::builder()
        .schema(SARIF_SCHEMA)
        .version(json!("2.1.0"))
        .runs(vec![run])
        .build();
    serde_json::to_string_pretty(&log).expect("plain data serialises")
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

    const ABOUT: About = About {
        fortress: "demo",
        manifest: None,
        allow_inconclusive: false,
    };

    #[test]
    fn json_is_versioned_with_a_summary_and_cis_ids() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample(), &ABOUT)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["fortress"], "demo");
        assert_eq!(
            v["summary"],
            serde_json::json!({"passed": 1, "failed": 1, "inconclusive": 1, "sandboxes": 2,
                "probes": 3, "verdict": "fail", "code": "clw-isolation-breach",
                "allowInconclusive": false})
        );
        let r = &v["results"];
        assert_eq!(r[1]["sandbox"], "a");
        assert_eq!(r[1]["probe"], "limits.pids");
        assert_eq!(r[1]["outcome"], "fail");
        assert_eq!(r[1]["cis"], serde_json::json!(["5.29"]));
        assert_eq!(r[0]["cis"], serde_json::json!([]));
        assert_eq!(r[2]["outcome"], "inconclusive");
        // One key style: every key of the document is camelCase.
        fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        out.push(k.clone());
                        keys(x, out);
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        keys(&v, &mut all);
        for k in all {
            assert!(
                k.chars().next().unwrap().is_ascii_lowercase()
                    && k.chars().all(|c| c.is_ascii_alphanumeric()),
                "{k}"
            );
        }
        let allowed = About {
            allow_inconclusive: true,
            ..ABOUT
        };
        let v: serde_json::Value = serde_json::from_str(&json(&sample()[..1], &allowed)).unwrap();
        assert_eq!(v["summary"]["verdict"], "pass");
    }

    fn sarif_schema() -> jsonschema::Validator {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sarif-schema-2.1.0.json"
        );
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    #[test]
    fn sarif_has_one_rule_per_probe_and_one_result_per_probe_not_passed() {
        let about = About {
            manifest: Some(Path::new("deploy/fortress one.yaml")),
            ..ABOUT
        };
        let out = sarif(&sample(), &about);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let errors: Vec<String> = sarif_schema()
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{out}");
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["proc.non-root", "limits.pids", "net.none"]);
        assert!(rules[1]["help"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Passes when the pids limit"));
        assert_eq!(rules[1]["properties"]["cis"], serde_json::json!(["5.29"]));
        assert!(rules[1]["properties"]["tags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("CIS-Docker-Benchmark-5.29")));
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["ruleId"], "limits.pids");
        assert_eq!(results[0]["ruleIndex"], 1);
        assert_eq!(results[0]["level"], "error");
        assert_eq!(results[1]["ruleId"], "net.none");
        assert_eq!(results[1]["level"], "warning");
        let loc = &results[0]["locations"][0];
        assert_eq!(loc["logicalLocations"][0]["name"], "a");
        assert_eq!(loc["logicalLocations"][0]["fullyQualifiedName"], "demo/a");
        assert_eq!(
            loc["physicalLocation"]["artifactLocation"]["uri"],
            "deploy/fortress%20one.yaml"
        );
        assert_eq!(results[0]["message"]["text"], "a: pids.max = max <&>");
    }

    #[test]
    fn a_passing_run_is_valid_sarif_with_no_results() {
        let out = sarif(&sample()[..1], &ABOUT);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(sarif_schema().is_valid(&v), "{out}");
        assert_eq!(v["runs"][0]["results"], serde_json::json!([]));
        assert!(v["runs"][0]["results"][0]["locations"][0]["physicalLocation"].is_null());
        assert_eq!(
            uri_of(Path::new("/etc/clw fortress.yaml")),
            "file:///etc/clw%20fortress.yaml"
        );
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
