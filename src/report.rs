//! How errors reach people and machines: the `error[<code>]` headline, the cause chain and the
//! `hint:` line as text, or the same as a JSON object (cli.md "Errors").
//!
//! The text shape is written here only: [`tag`] and [`headline`] for one line, and
//! [`ErrorReport::render_indented`] for a whole report under another line (apply's, heal's,
//! backup's per-item failures). Nothing else formats `error[`.

use serde::Serialize;

use crate::error::{Coded, ErrorCode};

/// `error[<code>]`, the tag an error line starts with.
pub fn tag(code: ErrorCode) -> String {
    format!("error[{code}]")
}

/// `error[<code>]: <message>`: one error on one line (logs, lists of problems).
pub fn headline(code: ErrorCode, message: &str) -> String {
    format!("{}: {message}", tag(code))
}

/// An error ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    pub code: ErrorCode,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    /// Extra lines under the headline (e.g. every manifest problem).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl ErrorReport {
    pub fn from_error(e: &(impl Coded + ?Sized)) -> ErrorReport {
        let mut causes = Vec::new();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            // thiserror's transparent wrappers repeat the message; say it once.
            if causes.last() != Some(&text) && text != e.to_string() {
                causes.push(text);
            }
            source = s.source();
        }
        ErrorReport {
            code: e.code(),
            message: e.to_string(),
            causes,
            hint: e.hint(),
            details: Vec::new(),
        }
    }

    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorReport {
        ErrorReport {
            code,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            details: Vec::new(),
        }
    }

    pub fn exit_status(&self) -> u8 {
        self.code.exit_status()
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The headline alone: [`headline`] of this report's code and message.
    pub fn headline(&self) -> String {
        headline(self.code, &self.message)
    }

    /// The headline, details, causes and hint, one per line.
    pub fn render_text(&self) -> String {
        self.render_indented("")
    }

    /// [`ErrorReport::render_text`] with every line under `indent`, for a failure shown below
    /// the line of the item that failed.
    pub fn render_indented(&self, indent: &str) -> String {
        let mut out = format!("{indent}{}\n", self.headline());
        for d in &self.details {
            out.push_str(&format!("{indent}  {d}\n"));
        }
        for c in &self.causes {
            out.push_str(&format!("{indent}  caused by: {c}\n"));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("{indent}hint: {h}\n"));
        }
        out
    }

    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises")
    }
}

/// The error and its causes on one line, for logs and audit rows.
pub fn chain(e: &(impl std::error::Error + ?Sized)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p == &t) {
            parts.push(t);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] std::io::Error);
    impl Coded for Outer {
        fn code(&self) -> ErrorCode {
            ErrorCode::EngineUnreachable
        }
        fn hint(&self) -> Option<String> {
            Some("start it".into())
        }
    }

    #[test]
    fn text_has_headline_causes_and_hint() {
        let e = Outer(std::io::Error::other("connection refused"));
        let r = ErrorReport::from_error(&e);
        assert_eq!(
            r.render_text(),
            "error[clw-engine-unreachable]: outer failed\n  caused by: connection refused\nhint: start it\n"
        );
        assert_eq!(r.exit_status(), 3);
        let v: serde_json::Value = serde_json::from_str(&r.render_json()).unwrap();
        assert_eq!(v["code"], "clw-engine-unreachable");
        assert_eq!(v["causes"][0], "connection refused");
        assert_eq!(v["hint"], "start it");
        assert_eq!(
            r.render_indented("    "),
            "    error[clw-engine-unreachable]: outer failed\n      caused by: connection refused\n    hint: start it\n"
        );
        assert_eq!(r.headline(), "error[clw-engine-unreachable]: outer failed");
        assert_eq!(tag(ErrorCode::Quarantined), "error[clw-quarantined]");
    }
}
