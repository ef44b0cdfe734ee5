//! What the engine client's HTTP stack may log. The engine adapter is where secrets reach the
//! engine (an exec's environment), so the rule that keeps them out of every log lives here
//! with it; the binary's logger applies it.

/// Crates of the HTTP stack that write requests and their bodies into their logs below `info`:
/// bollard logs every request body at debug (the exec-create body carries the exec's `Env`, the
/// secrets `exec` injects) and the raw request at trace; hyper, h2 and reqwest log headers and
/// frames at trace. Their `info` and above stays visible.
pub const HTTP_STACK: &[&str] = &[
    "bollard",
    "hyper",
    "hyper_util",
    "hyperlocal",
    "hyper_rustls",
    "h2",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "mio",
    "tower",
];

/// Whether `target` belongs to one of the [`HTTP_STACK`] crates.
pub fn from_http_stack(target: &str) -> bool {
    HTTP_STACK.iter().any(|krate| {
        target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

#[cfg(test)]
mod tests {
    use super::from_http_stack;

    #[test]
    fn http_stack_targets_are_matched_by_crate_not_by_prefix() {
        for target in [
            "bollard",
            "bollard::docker",
            "hyper::proto::h1::io",
            "h2::codec",
        ] {
            assert!(from_http_stack(target), "{target}");
        }
        for target in ["clw_fortress::exec", "hyperion", "h2o", "log"] {
            assert!(!from_http_stack(target), "{target}");
        }
    }
}
