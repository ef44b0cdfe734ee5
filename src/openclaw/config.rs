//! `openclaw.json`: parse it (with `line:column` on failure), compute its hardened form, render
//! it in the file's own indentation, and diff two renderings for `--dry-run`.
//!
//! Pure: no file is read or written here. Only `agents.defaults.sandbox.docker` is touched;
//! every other key keeps its value and its position (serde_json's `preserve_order`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::OpenclawError;

/// What the hardened sandbox settings are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `~` in existing bind sources expands to this.
    pub home: PathBuf,
    /// The OpenClaw state directory (absolute).
    pub state_dir: PathBuf,
    /// The directory the secrets move to; no kept bind may expose it.
    pub secrets_dir: PathBuf,
    /// The granular binds, `"<host>:<container>:<ro|rw>"`, in bind-set order.
    pub binds: Vec<String>,
    /// Bytes.
    pub memory: i64,
    pub cpus: f64,
    pub pids: i64,
    /// The generated seccomp profile's path.
    pub seccomp_profile: PathBuf,
}

/// The hardened config and one line per decision worth telling the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardened {
    pub value: Value,
    pub notes: Vec<String>,
}

/// Parses `openclaw.json`; a syntax error names the file and `line:column`.
pub fn parse(text: &str, file: &Path) -> Result<Value, OpenclawError> {
    let value: Value = serde_json::from_str(text).map_err(|e| OpenclawError::ConfigParse {
        file: file.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_location(&e.to_string()),
    })?;
    if !value.is_object() {
        return Err(shape(file, "", "the top level must be a JSON object"));
    }
    Ok(value)
}

/// serde_json appends ` at line L column C`; the error already carries both.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

fn shape(file: &Path, field: &str, message: &str) -> OpenclawError {
    OpenclawError::ConfigShape {
        file: file.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// The object at `path` under `root`, created (appended at the end) when missing.
fn object_at<'a>(
    root: &'a mut Value,
    path: &[&str],
    file: &Path,
) -> Result<&'a mut Map<String, Value>, OpenclawError> {
    let mut cursor = root;
    let mut field = String::new();
    for key in path {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(key);
        let map = cursor
            .as_object_mut()
            .ok_or_else(|| shape(file, &field, "must be a JSON object"))?;
        cursor = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !cursor.is_object() {
            return Err(shape(file, &field, "must be a JSON object"));
        }
    }
    Ok(cursor.as_object_mut().expect("checked above"))
}

/// `~` and `~/x` against `home`; anything else as written.
fn expand_home(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

/// The host side of a Docker bind string (`src:dst[:opts]`).
fn bind_source(bind: &str) -> &str {
    bind.split(':').next().unwrap_or(bind)
}

/// Lexical normalisation (`.`/`//`/trailing `/`), enough to compare bind sources.
fn normalise(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Docker's `RAMInBytes`: a number of bytes, or a number with `b`/`k`/`m`/`g`/`t` (binary).
pub fn parse_docker_size(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().filter(|b| *b > 0),
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            let s = s.strip_suffix('b').unwrap_or(&s);
            let s = s.strip_suffix('i').unwrap_or(s);
            let (digits, unit) = match s.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c)),
                _ => (s, None),
            };
            let shift = match unit {
                None => 0,
                Some('k') => 10,
                Some('m') => 20,
                Some('g') => 30,
                Some('t') => 40,
                Some(_) => return None,
            };
            let n: f64 = digits.trim().parse().ok()?;
            (n.is_finite() && n > 0.0).then(|| (n * (1u64 << shift) as f64) as i64)
        }
        _ => None,
    }
}

/// Bytes as the Docker CLI writes them: the largest exact unit (`8g`, `64m`), else bytes.
pub fn docker_size(bytes: i64) -> String {
    for (shift, unit) in [(30, 'g'), (20, 'm'), (10, 'k')] {
        if bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn cpus_value(cpus: f64) -> Value {
    if cpus.fract() == 0.0 && cpus.abs() < 1e15 {
        Value::from(cpus as i64)
    } else {
        Value::from(cpus)
    }
}

/// The hardened form of `config`. Decisions (each noted when it keeps or refuses a value):
///
/// - `binds`: every bind whose source is the state directory or inside it is replaced by the
///   granular binds; other binds are kept after them. A kept bind that exposes the state
///   directory or the secrets directory (is, contains or is inside one) is refused.
/// - `pidsLimit`, `memory`, `cpus`: ours, unless the file already has a stricter value;
///   `memorySwap` equals `memory` (no swap).
/// - `readOnlyRoot: true`; `capDrop: ["ALL"]` unless it already drops `ALL`.
/// - `network`: `none` when missing or `host`/`container:*` (which OpenClaw rejects anyway);
///   an explicit `bridge` or named network is the user's choice and is kept.
/// - `seccompProfile`: ours when missing or `unconfined`; another profile file is kept.
/// - `dangerouslyAllowExternalBindSources: true` only when a bind source lies outside the
///   agent workspace roots, which newer OpenClaw releases otherwise refuse.
pub fn harden(config: &Value, s: &Settings, file: &Path) -> Result<Hardened, OpenclawError> {
    let mut value = config.clone();
    let mut notes = Vec::new();
    let workspace = config
        .pointer("/agents/defaults/workspace")
        .and_then(Value::as_str)
        .map(|w| normalise(&expand_home(w, &s.home)))
        .unwrap_or_else(|| s.state_dir.join("workspace"));
    let docker = object_at(
        &mut value,
        &["agents", "defaults", "sandbox", "docker"],
        file,
    )?;
    let field = |k: &str| format!("agents.defaults.sandbox.docker.{k}");

    // Binds.
    let existing: Vec<String> = match docker.get("binds") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| shape(file, &field("binds"), "every bind must be a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape(file, &field("binds"), "must be an array of strings")),
    };
    let mut binds = s.binds.clone();
    for bind in existing {
        if binds.contains(&bind) {
            continue;
        }
        let source = normalise(&expand_home(bind_source(&bind), &s.home));
        if source.starts_with(&s.state_dir) {
            notes.push(format!("replaced bind {bind} by the granular binds"));
            continue;
        }
        for (dir, what) in [
            (&s.state_dir, "the OpenClaw state directory"),
            (&s.secrets_dir, "the secrets directory"),
        ] {
            if dir.starts_with(&source) || source.starts_with(dir) {
                return Err(OpenclawError::BindExposes {
                    file: file.to_path_buf(),
                    bind: bind.clone(),
                    what: format!("{what} {}", dir.display()),
                });
            }
        }
        notes.push(format!("kept bind {bind} (outside the state directory)"));
        binds.push(bind);
    }
    docker.insert(
        "binds".into(),
        Value::Array(binds.iter().cloned().map(Value::from).collect()),
    );

    // Limits: never loosen a stricter value already there.
    let pids = match docker.get("pidsLimit").and_then(Value::as_i64) {
        Some(p) if p > 0 && p < s.pids => {
            notes.push(format!("kept pidsLimit {p} (stricter than {})", s.pids));
            p
        }
        _ => s.pids,
    };
    docker.insert("pidsLimit".into(), Value::from(pids));
    let memory_value = match docker.get("memory") {
        Some(v) if parse_docker_size(v).is_some_and(|b| b < s.memory) => {
            notes.push(format!(
                "kept memory {v} (stricter than {})",
                docker_size(s.memory)
            ));
            v.clone()
        }
        _ => Value::from(docker_size(s.memory)),
    };
    docker.insert("memory".into(), memory_value.clone());
    docker.insert("memorySwap".into(), memory_value);
    let cpus = match docker.get("cpus").and_then(Value::as_f64) {
        Some(c) if c > 0.0 && c < s.cpus => {
            notes.push(format!("kept cpus {c} (stricter than {})", s.cpus));
            cpus_value(c)
        }
        _ => cpus_value(s.cpus),
    };
    docker.insert("cpus".into(), cpus);

    docker.insert("readOnlyRoot".into(), Value::Bool(true));
    let drops_all = docker
        .get("capDrop")
        .and_then(Value::as_array)
        .is_some_and(|caps| {
            caps.iter()
                .any(|c| c.as_str().is_some_and(|c| c.eq_ignore_ascii_case("ALL")))
        });
    if !drops_all {
        docker.insert("capDrop".into(), serde_json::json!(["ALL"]));
    }

    match docker.get("network").and_then(Value::as_str) {
        None => {
            docker.insert("network".into(), Value::from("none"));
        }
        Some(n) if n == "host" || n.starts_with("container:") => {
            notes.push(format!(
                "network {n} replaced by none (OpenClaw refuses it for sandboxes)"
            ));
            docker.insert("network".into(), Value::from("none"));
        }
        Some("none") => {}
        Some(n) => notes.push(format!("kept network {n} (an explicit choice)")),
    }

    let ours = s.seccomp_profile.display().to_string();
    match docker.get("seccompProfile").and_then(Value::as_str) {
        Some(p) if p != ours && !p.trim().eq_ignore_ascii_case("unconfined") => {
            notes.push(format!("kept seccompProfile {p} (a profile of your own)"));
        }
        _ => {
            docker.insert("seccompProfile".into(), Value::from(ours));
        }
    }

    let roots = [workspace.clone(), s.state_dir.join("sandboxes")];
    let external: Vec<&String> = binds
        .iter()
        .filter(|b| {
            let src = normalise(&expand_home(bind_source(b), &s.home));
            !roots.iter().any(|r| src.starts_with(r))
        })
        .collect();
    let allowed = docker.get("dangerouslyAllowExternalBindSources") == Some(&Value::Bool(true));
    if !external.is_empty() && !allowed {
        notes.push(format!(
            "set dangerouslyAllowExternalBindSources: {} bind source(s) lie outside the agent \
             workspace {}, which newer OpenClaw releases refuse otherwise",
            external.len(),
            workspace.display()
        ));
        docker.insert(
            "dangerouslyAllowExternalBindSources".into(),
            Value::Bool(true),
        );
    }
    Ok(Hardened { value, notes })
}

/// The indentation unit of a JSON text: the leading whitespace of its first indented line.
pub fn indent_of(text: &str) -> String {
    text.lines()
        .skip(1)
        .find_map(|l| {
            let ws: String = l.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
            (!ws.is_empty()).then_some(ws)
        })
        .unwrap_or_else(|| "  ".to_string())
}

/// Pretty JSON in `indent`, with a final newline.
pub fn render(value: &Value, indent: &str) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser).expect("a JSON value serialises");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    text.push('\n');
    text
}

/// Key names whose values are credentials: masked in diffs, which are printed.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "token", "secret", "password", "passwd", "apikey", "api_key", "key",
    ]
    .iter()
    .any(|w| k.ends_with(w))
        || k.contains("token")
        || k.contains("secret")
        || k.contains("password")
}

/// The JSON string tokens of a line as byte ranges (quotes included); escapes respected.
fn string_tokens(line: &str) -> Vec<(usize, usize)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i;
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            out.push((start, (i + 1).min(bytes.len())));
        }
        i += 1;
    }
    out
}

/// A line of JSON with the string value of every credential-like key masked, wherever the
/// pair sits on the line (pretty or inline objects alike).
fn redact_line(line: &str) -> String {
    let tokens = string_tokens(line);
    let mut out = String::new();
    let mut copied = 0;
    for pair in tokens.windows(2) {
        let ((ks, ke), (vs, ve)) = (pair[0], pair[1]);
        let between = &line[ke..vs];
        if between.trim() != ":" || ke < ks + 2 || !secret_key(&line[ks + 1..ke - 1]) {
            continue;
        }
        out.push_str(&line[copied..vs]);
        out.push_str("\"<redacted>\"");
        copied = ve;
    }
    out.push_str(&line[copied..]);
    out
}

/// A unified diff of two renderings, credential-like values masked.
pub fn diff(old: &str, new: &str, name: &str) -> String {
    let redact = |t: &str| t.lines().map(redact_line).collect::<Vec<_>>().join("\n") + "\n";
    let (old, new) = (redact(old), redact(new));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            home: "/home/a".into(),
            state_dir: "/home/a/.openclaw".into(),
            secrets_dir: "/home/a/.config/openclaw-secrets".into(),
            binds: vec![
                "/home/a/.openclaw/workspace:/agent-workspace:rw".into(),
                "/home/a/.openclaw/logs:/home/a/.openclaw/logs:ro".into(),
            ],
            memory: 8 << 30,
            cpus: 4.0,
            pids: 512,
            seccomp_profile: "/home/a/.openclaw/seccomp/clw-default.json".into(),
        }
    }

    fn docker(v: &Value) -> &Value {
        &v["agents"]["defaults"]["sandbox"]["docker"]
    }

    fn file() -> &'static Path {
        Path::new("/home/a/.openclaw/openclaw.json")
    }

    #[test]
    fn docker_sizes_parse_like_the_docker_cli() {
        let cases = [
            (json!("8g"), Some(8 << 30)),
            (json!("8G"), Some(8 << 30)),
            (json!("512m"), Some(512 << 20)),
            (json!("1gb"), Some(1 << 30)),
            (json!("64Mi"), Some(64 << 20)),
            (json!("1.5g"), Some(3 << 29)),
            (json!(1024), Some(1024)),
            (json!("100"), Some(100)),
            (json!("-1"), None),
            (json!("lots"), None),
            (json!(true), None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_docker_size(&input), want, "{input}");
        }
        assert_eq!(docker_size(8 << 30), "8g");
        assert_eq!(docker_size(64 << 20), "64m");
        assert_eq!(docker_size(1000), "1000");
    }

    #[test]
    fn a_missing_sandbox_section_is_created_with_every_setting() {
        let h = harden(&json!({"gateway": {"port": 18789}}), &settings(), file()).unwrap();
        assert_eq!(
            docker(&h.value),
            &json!({
                "binds": settings().binds,
                "pidsLimit": 512,
                "memory": "8g",
                "memorySwap": "8g",
                "cpus": 4,
                "readOnlyRoot": true,
                "capDrop": ["ALL"],
                "network": "none",
                "seccompProfile": "/home/a/.openclaw/seccomp/clw-default.json",
                "dangerouslyAllowExternalBindSources": true,
            })
        );
        let keys: Vec<&String> = h.value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["gateway", "agents"]);
    }

    #[test]
    fn the_whole_state_directory_bind_is_replaced_and_outside_binds_are_kept() {
        let config = json!({"agents": {"defaults": {"sandbox": {"docker": {"binds": [
            "~/.openclaw:/home/node/.openclaw:rw",
            "/srv/data:/data:ro",
        ]}}}}});
        let h = harden(&config, &settings(), file()).unwrap();
        let mut want = settings().binds;
        want.push("/srv/data:/data:ro".into());
        assert_eq!(docker(&h.value)["binds"], json!(want));
    }

    #[test]
    fn a_kept_bind_exposing_the_secrets_or_the_state_directory_is_refused() {
        for bind in [
            "~:/home/node:rw",
            "/home/a/.config:/cfg:ro",
            "/home/a/.config/openclaw-secrets/secrets.env:/s:ro",
        ] {
            let config =
                json!({"agents": {"defaults": {"sandbox": {"docker": {"binds": [bind]}}}}});
            let err = harden(&config, &settings(), file()).unwrap_err();
            assert!(
                matches!(err, OpenclawError::BindExposes { .. }),
                "{bind}: {err}"
            );
        }
    }

    #[test]
    fn stricter_limits_and_explicit_choices_are_kept_weaker_ones_replaced() {
        let config = json!({"agents": {"defaults": {"sandbox": {"docker": {
            "pidsLimit": 100, "memory": "16g", "memorySwap": "-1", "cpus": 0.5,
            "readOnlyRoot": false, "capDrop": ["NET_RAW"], "network": "bridge",
            "seccompProfile": "/etc/mine.json",
        }}}}});
        let h = harden(&config, &settings(), file()).unwrap();
        let d = docker(&h.value);
        assert_eq!(d["pidsLimit"], 100);
        assert_eq!(d["memory"], "8g");
        assert_eq!(d["memorySwap"], "8g");
        assert_eq!(d["cpus"], 0.5);
        assert_eq!(d["readOnlyRoot"], true);
        assert_eq!(d["capDrop"], json!(["ALL"]));
        assert_eq!(d["network"], "bridge");
        assert_eq!(d["seccompProfile"], "/etc/mine.json");
        assert!(h.notes.iter().any(|n| n.contains("kept network bridge")));
    }

    #[test]
    fn host_network_and_unconfined_seccomp_are_replaced() {
        let config = json!({"agents": {"defaults": {"sandbox": {"docker": {
            "network": "host", "seccompProfile": "unconfined",
        }}}}});
        let h = harden(&config, &settings(), file()).unwrap();
        assert_eq!(docker(&h.value)["network"], "none");
        assert_eq!(
            docker(&h.value)["seccompProfile"],
            "/home/a/.openclaw/seccomp/clw-default.json"
        );
    }

    #[test]
    fn binds_inside_the_workspace_need_no_external_source_flag() {
        let mut s = settings();
        s.binds.truncate(1);
        let h = harden(&json!({}), &s, file()).unwrap();
        assert!(docker(&h.value)
            .get("dangerouslyAllowExternalBindSources")
            .is_none());
    }

    #[test]
    fn hardening_is_a_fixed_point() {
        let once = harden(
            &json!({"agents": {"defaults": {"sandbox": {"docker": {"binds": ["~/.openclaw:/x:rw"]}}}}}),
            &settings(),
            file(),
        )
        .unwrap();
        let twice = harden(&once.value, &settings(), file()).unwrap();
        assert_eq!(once.value, twice.value);
    }

    #[test]
    fn a_non_object_on_the_path_is_a_shape_error_naming_the_field() {
        let err = harden(&json!({"agents": []}), &settings(), file()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/home/a/.openclaw/openclaw.json: agents: must be a JSON object"
        );
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let err = parse("{\n  \"a\": 1,\n  oops\n}\n", file()).unwrap_err();
        match err {
            OpenclawError::ConfigParse { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn rendering_keeps_the_files_indentation() {
        assert_eq!(indent_of("{\n    \"a\": 1\n}\n"), "    ");
        assert_eq!(indent_of("{\n\t\"a\": 1\n}\n"), "\t");
        assert_eq!(indent_of("{}"), "  ");
        assert_eq!(
            render(&json!({"a": [1]}), "  "),
            "{\n  \"a\": [\n    1\n  ]\n}\n"
        );
    }

    #[test]
    fn credential_values_are_masked_inline_and_pretty() {
        let cases = [
            (
                "  \"botToken\": \"123:abc\",",
                "  \"botToken\": \"<redacted>\",",
            ),
            (
                "  \"auth\": { \"token\": \"t\\\"x\" },",
                "  \"auth\": { \"token\": \"<redacted>\" },",
            ),
            ("  \"port\": 18789,", "  \"port\": 18789,"),
            ("  \"image\": \"a:b\",", "  \"image\": \"a:b\","),
        ];
        for (line, want) in cases {
            assert_eq!(redact_line(line), want, "{line}");
        }
    }

    #[test]
    fn diffs_mask_credential_like_values() {
        let old = "{\n  \"botToken\": \"123:abc\",\n  \"a\": 1\n}\n";
        let new = "{\n  \"botToken\": \"123:abc\",\n  \"a\": 2\n}\n";
        let d = diff(old, new, "openclaw.json");
        assert!(!d.contains("123:abc"), "{d}");
        assert!(d.contains("\"botToken\": \"<redacted>\","), "{d}");
        assert!(
            d.contains("-  \"a\": 1") && d.contains("+  \"a\": 2"),
            "{d}"
        );
    }
}
