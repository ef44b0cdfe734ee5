//! `explain <code>`: the long description of an error code.

use super::{CmdResult, Output};
use crate::error::ErrorCode;
use crate::report::ErrorReport;

pub fn run(code: &str, output: Output) -> CmdResult {
    let Some(c) = ErrorCode::parse(code) else {
        let known: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        return Err(ErrorReport::new(
            ErrorCode::ConfigInvalid,
            format!("unknown error code {code:?}"),
        )
        .with_hint(format!("known codes: {}", known.join(", "))));
    };
    match output {
        Output::Text => print!("{}", c.explain()),
        Output::Json => super::print_json(&serde_json::json!({
            "code": c.as_str(),
            "exitStatus": c.exit_status(),
            "description": c.explain(),
        })),
    }
    Ok(0)
}
