//! `egress serve`: runs one sandbox's egress proxy in the foreground, from the manifest's
//! policy, until SIGINT or SIGTERM. The daemon will serve one listener per sandbox itself; this
//! command exists so the proxy can be run and tested end to end on its own.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use clap::Subcommand;

use super::{Cli, CmdResult};
use crate::daemon::metrics::Metrics;
use crate::egress::proxy::{self, Proxy, ProxyLimits};
use crate::error::{exit, ErrorCode};
use crate::report::ErrorReport;

#[derive(Debug, Subcommand)]
pub enum EgressCommand {
    /// Serve one sandbox's egress allow-list as an HTTP proxy (CONNECT and plain HTTP) in the
    /// foreground; denials are logged, counted and recorded in the state database.
    Serve {
        /// The sandbox whose `egress` policy applies.
        #[arg(long)]
        sandbox: String,
        /// Address and port to listen on (port 0: any free port, printed on start).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: SocketAddr,
        /// Answer lookups of NAME with ADDR instead of asking DNS; the answer is checked like
        /// a DNS answer (unlike egress.hosts). For tests and benchmarks.
        #[arg(long, value_name = "NAME=ADDR", hide = true)]
        resolve: Vec<String>,
    },
}

pub async fn run(cli: &Cli, command: &EgressCommand) -> CmdResult {
    let EgressCommand::Serve {
        sandbox,
        listen,
        resolve,
    } = command;
    let fortress = cli.load()?;
    let Some(sbx) = fortress.sandboxes.iter().find(|s| &s.name == sandbox) else {
        return Err(ErrorReport::new(
            ErrorCode::ConfigInvalid,
            format!("no sandbox `{sandbox}` in {}", fortress.file.display()),
        ));
    };
    let Some(policy) = sbx.egress.clone() else {
        return Err(ErrorReport::new(
            ErrorCode::ConfigInvalid,
            format!("sandbox `{sandbox}` has no egress policy: add `egress: {{allow: [...]}}`"),
        ));
    };
    let overrides = parse_overrides(resolve)?;
    let state = Arc::new(cli.open_state(&fortress)?);
    let mut proxy = Proxy::new(
        &fortress.name,
        sandbox,
        policy,
        ProxyLimits::default(),
        Some(state),
        Arc::new(Metrics::new()),
    );
    proxy.resolve_overrides = overrides;
    let listener = proxy::bind(*listen)
        .await
        .map_err(|e| super::report_of(&e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ErrorReport::new(ErrorCode::PermissionDenied, e.to_string()))?;
    println!("egress proxy for sandbox {sandbox} listening on {local}");
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ErrorReport::new(ErrorCode::PermissionDenied, e.to_string()))?;
    tokio::select! {
        _ = proxy::serve(listener, Arc::new(proxy)) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(exit::OK)
}

fn parse_overrides(list: &[String]) -> Result<BTreeMap<String, Vec<IpAddr>>, ErrorReport> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for item in list {
        let parsed = item.split_once('=').and_then(|(n, a)| {
            let name = crate::egress::policy::normalise_name(n).ok()?;
            Some((name, a.parse::<IpAddr>().ok()?))
        });
        let Some((name, addr)) = parsed else {
            return Err(ErrorReport::new(
                ErrorCode::ConfigInvalid,
                format!("--resolve {item:?}: write NAME=ADDR"),
            ));
        };
        out.entry(name).or_default().push(addr);
    }
    Ok(out)
}
