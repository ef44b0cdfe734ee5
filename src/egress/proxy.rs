//! The egress proxy: an HTTP/1 proxy serving one sandbox's policy on one listener. It speaks
//! CONNECT (a byte tunnel) and absolute-URI plain HTTP, asks [`decide`] about every
//! destination, and connects only to the addresses the decision returned.
//!
//! The sandbox is identified by the listener: one [`Proxy`] per listener, so the daemon can
//! later bind one per internal-network gateway address. This module must not read headers or
//! bodies beyond what forwarding needs, and must never log or record them.
//!
//! Plain HTTP is forwarded with hyper's client *connection* (`client::conn::http1`) over a
//! `TcpStream` the proxy opened itself to the checked address: not hyper-util's pooled client,
//! which resolves names on its own (a second resolution would let a rebinding DNS answer
//! differently from the one that was checked), and not a raw TCP forward of the request, which
//! would hand a keep-alive connection's next request (possibly for another host) to the first
//! host's upstream unchecked. Every request gets its own decision and upstream connection.
//!
//! With brokered secrets ([`Brokering`], crate::broker), every request head (and a small
//! body) is searched for the sandbox's sentinels before anything is sent: one out of place is
//! refused (403, `clw-isolation-breach`); one in a bound place is replaced by the value. A
//! CONNECT to a brokered `host:port` is not tunnelled but terminated: the proxy answers TLS
//! with a leaf of the fortress CA, reads each request, and sends it on over its own verified
//! TLS connection. Every other CONNECT stays an opaque tunnel.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::broker::{self as ebroker, Brokering};
use super::policy::{decide, Decision, DenyReason, Dest, EgressPolicy};
use crate::broker::{Bound, Breach};
use crate::daemon::metrics::Metrics;
use crate::error::{Coded, ErrorCode};
use crate::secrets::SecretMap;
use crate::state::{now_ms, EgressDecision, EgressEvent, State};

type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Resource bounds of one proxy (one sandbox).
#[derive(Debug, Clone, Copy)]
pub struct ProxyLimits {
    /// Largest request head (request line and headers) read from the sandbox; hyper's read
    /// buffer, so at least 8 KiB.
    pub max_head_bytes: usize,
    /// Time to receive a request head, and to connect upstream.
    pub connect_timeout: Duration,
    /// A tunnel or a forwarded exchange with no byte in either direction for this long ends.
    pub idle_timeout: Duration,
    /// Connections from the sandbox served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            max_head_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 256,
        }
    }
}

/// One sandbox's proxy: its policy, its bounds and where it reports.
pub struct Proxy {
    pub fortress: String,
    pub sandbox: String,
    pub policy: EgressPolicy,
    pub limits: ProxyLimits,
    /// Answers used instead of the system resolver for these names, checked like any DNS
    /// answer (unlike `egress.hosts`, which is trusted configuration). For tests and
    /// benchmarks: they stand in for a split-horizon or rebinding DNS without a DNS server.
    pub resolve_overrides: BTreeMap<String, Vec<IpAddr>>,
    pub state: Option<Arc<State>>,
    pub metrics: Arc<Metrics>,
    /// The sandbox's brokered secrets, if it has any.
    pub brokering: Option<Arc<Brokering>>,
    permits: Arc<Semaphore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Coded for ProxyError {
    fn code(&self) -> ErrorCode {
        ErrorCode::PermissionDenied
    }
    fn hint(&self) -> Option<String> {
        Some("choose a free address and port this user may bind".into())
    }
}

impl Proxy {
    pub fn new(
        fortress: &str,
        sandbox: &str,
        policy: EgressPolicy,
        limits: ProxyLimits,
        state: Option<Arc<State>>,
        metrics: Arc<Metrics>,
    ) -> Proxy {
        Proxy {
            fortress: fortress.to_string(),
            sandbox: sandbox.to_string(),
            policy,
            limits,
            resolve_overrides: BTreeMap::new(),
            state,
            metrics,
            brokering: None,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
        }
    }

    async fn resolve(&self, name: &str, port: u16) -> Vec<IpAddr> {
        if let Some(addrs) = self.resolve_overrides.get(name) {
            return addrs.clone();
        }
        match tokio::time::timeout(
            self.limits.connect_timeout,
            tokio::net::lookup_host((name, port)),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            _ => Vec::new(),
        }
    }

    /// Resolves where needed and decides.
    async fn check(&self, dest: &Dest, port: u16) -> Decision {
        let resolved = match dest {
            Dest::Name(n) if self.policy.needs_lookup(dest, port) => self.resolve(n, port).await,
            _ => Vec::new(),
        };
        decide(&self.policy, dest, port, &resolved)
    }

    fn record(&self, event: EgressEvent) {
        if let Some(state) = &self.state {
            if let Err(e) = state.record_egress(&event) {
                tracing::warn!(sandbox = %self.sandbox, "egress: cannot record the event: {e}");
            }
        }
    }

    fn denied(
        &self,
        dest: &Dest,
        port: u16,
        rule_needed: &str,
        reason: &DenyReason,
    ) -> Response<ProxyBody> {
        let host = dest.to_string();
        tracing::warn!(
            sandbox = %self.sandbox,
            host = %host,
            port,
            reason = reason.as_str(),
            rule_needed,
            "egress denied"
        );
        self.metrics.egress_denied(&self.sandbox, &host);
        self.record(EgressEvent {
            ts_ms: now_ms(),
            sandbox: self.sandbox.clone(),
            host: host.clone(),
            port,
            decision: EgressDecision::Denied,
            reason: reason.as_str().to_string(),
            rule_needed: rule_needed.to_string(),
            bytes: 0,
        });
        text(
            StatusCode::FORBIDDEN,
            format!(
                "clw-fortress: egress denied\n\
                 fortress: {}\nsandbox: {}\ndestination: {host}:{port}\nreason: {reason}\n\
                 to allow it, add to the sandbox in the fortress manifest:\n  \
                 egress.allow: [\"{rule_needed}\"]\n",
                self.fortress, self.sandbox
            ),
        )
    }

    /// A request that carries a sentinel where it may not go: refused, logged (names only),
    /// counted, recorded and audited as an isolation breach.
    fn breach(&self, dest: &Dest, port: u16, b: &Breach) -> Response<ProxyBody> {
        let host = dest.to_string();
        let code = ErrorCode::IsolationBreach.as_str();
        tracing::error!(
            sandbox = %self.sandbox,
            host = %host,
            port,
            secret = %b.name,
            place = b.place.as_str(),
            encoding = b.encoding.as_str(),
            code,
            "egress refused: a brokered secret's sentinel was sent where the secret is not bound"
        );
        self.metrics.egress_sentinel_refused(&self.sandbox);
        self.record(EgressEvent {
            ts_ms: now_ms(),
            sandbox: self.sandbox.clone(),
            host: host.clone(),
            port,
            decision: EgressDecision::Denied,
            reason: "secret-sentinel".into(),
            rule_needed: String::new(),
            bytes: 0,
        });
        if let Some(state) = &self.state {
            let detail = format!(
                "destination={} secret={} place={} encoding={}",
                dest.rule(port),
                b.name,
                b.place,
                b.encoding.as_str()
            );
            if let Err(e) = state.audit("agent:egress", code, &self.sandbox, "refused", &detail) {
                tracing::warn!(sandbox = %self.sandbox, "egress: cannot audit the breach: {e}");
            }
        }
        text(
            StatusCode::FORBIDDEN,
            format!(
                "clw-fortress: refused ({code})\nfortress: {}\nsandbox: {}\ndestination: {host}:{port}\n\
                 this request carries the sentinel of brokered secret {} ({}) in the {}; the \
                 secret is not bound to this destination there (secretEnv broker.hosts and \
                 broker.in)\n",
                self.fortress,
                self.sandbox,
                b.name,
                b.encoding.as_str(),
                b.place
            ),
        )
    }

    /// What brokering needs for one request: the secrets file's values and the sandbox's
    /// seed. Fails closed: without them no request is served (a sentinel could not be found).
    fn broker_inputs(
        &self,
        b: &Brokering,
    ) -> Result<(SecretMap, Vec<u8>), Box<Response<ProxyBody>>> {
        let unavailable = |what: &str| {
            tracing::error!(sandbox = %self.sandbox, "egress broker: {what}");
            Box::new(text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "clw-fortress: the egress proxy cannot broker this sandbox's secrets: {what}\n"
                ),
            ))
        };
        let Some(state) = &self.state else {
            return Err(unavailable("the state database is not open"));
        };
        let seed = state
            .broker_seed(&self.sandbox)
            .map_err(|e| unavailable(&crate::report::chain(&e)))?;
        let map = b
            .read_secrets()
            .map_err(|e| unavailable(&crate::report::chain(&e)))?;
        Ok((map, seed))
    }

    fn allowed_done(&self, dest: &Dest, port: u16, bytes: u64) {
        self.metrics.egress_bytes(&self.sandbox, bytes);
        tracing::debug!(sandbox = %self.sandbox, host = %dest, port, bytes, "egress connection ended");
        self.record(EgressEvent {
            ts_ms: now_ms(),
            sandbox: self.sandbox.clone(),
            host: dest.to_string(),
            port,
            decision: EgressDecision::Allowed,
            reason: String::new(),
            rule_needed: String::new(),
            bytes,
        });
    }

    /// Opens a connection to the first of `addrs` that answers within the connect timeout.
    async fn connect(&self, addrs: &[IpAddr], port: u16) -> Option<TcpStream> {
        for ip in addrs {
            let addr = SocketAddr::new(*ip, port);
            match tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Some(s);
                }
                Ok(Err(e)) => {
                    tracing::debug!(sandbox = %self.sandbox, %addr, "egress: connect failed: {e}")
                }
                Err(_) => {
                    tracing::debug!(sandbox = %self.sandbox, %addr, "egress: connect timed out")
                }
            }
        }
        None
    }
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|n| match n {})
                .boxed_unsync(),
        )
        .expect("a static response is valid")
}

/// The destination of a request: CONNECT's authority, or an absolute `http://` URI's.
fn target(req: &Request<Incoming>) -> Result<(String, u16), &'static str> {
    let uri = req.uri();
    if req.method() == Method::CONNECT {
        let auth = uri.authority().ok_or("CONNECT needs host:port")?;
        let port = auth.port_u16().ok_or("CONNECT needs host:port")?;
        return Ok((auth.host().to_string(), port));
    }
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err("only http:// is proxied as plain HTTP; use CONNECT for https"),
        None => {
            return Err(
                "this is an HTTP proxy: send absolute-URI requests (http://host/...) or CONNECT",
            )
        }
    }
    let auth = uri.authority().ok_or("the URI has no host")?;
    Ok((auth.host().to_string(), auth.port_u16().unwrap_or(80)))
}

/// Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for h in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        headers.remove(h);
    }
}

async fn handle(
    proxy: Arc<Proxy>,
    permit: Arc<OwnedSemaphorePermit>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (host, port) = match target(&req) {
        Ok(t) => t,
        Err(m) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("clw-fortress: {m}\n"),
            ))
        }
    };
    let Some(dest) = Dest::parse(&host) else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "clw-fortress: the destination is neither an address nor a host name\n".into(),
        ));
    };
    let brokering = proxy.brokering.clone();
    let inputs = match &brokering {
        Some(b) => match proxy.broker_inputs(b) {
            Ok(i) => Some(i),
            Err(r) => return Ok(*r),
        },
        None => None,
    };
    let bound: Vec<Bound<'_>> = match (&brokering, &inputs) {
        (Some(b), Some((map, seed))) => b.bound(map, seed, &proxy.sandbox),
        _ => Vec::new(),
    };
    // A sentinel in the host name goes to DNS and to whoever serves the name: checked before
    // anything is resolved.
    if let Err(b) = ebroker::check_destination(&bound, &dest, port) {
        return Ok(proxy.breach(&dest, port, &b));
    }
    let addrs = match proxy.check(&dest, port).await {
        Decision::Allow { connect_to } => connect_to,
        Decision::Deny {
            rule_needed,
            reason,
        } => return Ok(proxy.denied(&dest, port, &rule_needed, &reason)),
    };
    if req.method() == Method::CONNECT {
        if let Some(b) = brokering.as_ref().filter(|b| b.binds(&dest, port)) {
            let b = b.clone();
            drop(bound);
            return Ok(terminate(proxy, permit, b, dest, port, addrs, req));
        }
    }
    let req = if req.method() == Method::CONNECT {
        req.map(|b| b.boxed_unsync())
    } else {
        match prepare(&proxy, &bound, &dest, port, req).await {
            Ok(r) => r,
            Err(r) => return Ok(*r),
        }
    };
    drop(bound);
    drop(inputs);
    let Some(upstream) = proxy.connect(&addrs, port).await else {
        return Ok(text(
            StatusCode::BAD_GATEWAY,
            format!("clw-fortress: {dest}:{port} is allowed but did not accept a connection\n"),
        ));
    };
    if req.method() == Method::CONNECT {
        tokio::spawn(async move {
            let _permit = permit;
            let bytes = match hyper::upgrade::on(req).await {
                // The sandbox's own socket back from hyper (it is the only I/O type served), so
                // the tunnel copies between two plain sockets; bytes the client sent after the
                // CONNECT head (a pipelined TLS hello) go upstream first.
                Ok(upgraded) => match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => {
                        let mut upstream = upstream;
                        let early = parts.read_buf.len() as u64;
                        if upstream.write_all(&parts.read_buf).await.is_err() {
                            0
                        } else {
                            early
                                + tunnel(parts.io.into_inner(), upstream, proxy.limits.idle_timeout)
                                    .await
                        }
                    }
                    Err(upgraded) => {
                        tunnel(TokioIo::new(upgraded), upstream, proxy.limits.idle_timeout).await
                    }
                },
                Err(e) => {
                    tracing::debug!(sandbox = %proxy.sandbox, "egress: upgrade failed: {e}");
                    0
                }
            };
            proxy.allowed_done(&dest, port, bytes);
        });
        return Ok(Response::new(
            Empty::new().map_err(|n| match n {}).boxed_unsync(),
        ));
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    Ok(forward(proxy, permit, dest, port, authority, upstream, req).await)
}

/// Checks and rewrites one request for brokering (a no-op without brokered secrets): the head,
/// then a body small enough to search, which is read whole first.
async fn prepare(
    proxy: &Proxy,
    bound: &[Bound<'_>],
    dest: &Dest,
    port: u16,
    req: Request<Incoming>,
) -> Result<Request<ProxyBody>, Box<Response<ProxyBody>>> {
    let (mut parts, body) = req.into_parts();
    if bound.is_empty() {
        return Ok(Request::from_parts(parts, body.boxed_unsync()));
    }
    ebroker::rewrite_head(bound, dest, port, &mut parts)
        .map_err(|b| Box::new(proxy.breach(dest, port, &b)))?;
    let body = match ebroker::searchable_body_len(&parts.headers) {
        Some(n) if n > 0 => {
            let collected =
                tokio::time::timeout(proxy.limits.connect_timeout, body.collect()).await;
            let Ok(Ok(collected)) = collected else {
                return Err(Box::new(text(
                    StatusCode::BAD_REQUEST,
                    "clw-fortress: the request body did not arrive\n".into(),
                )));
            };
            let bytes = ebroker::rewrite_body(bound, dest, port, collected.to_bytes())
                .map_err(|b| Box::new(proxy.breach(dest, port, &b)))?;
            parts.headers.insert(
                hyper::header::CONTENT_LENGTH,
                HeaderValue::from(bytes.len()),
            );
            Full::new(bytes).map_err(|n| match n {}).boxed_unsync()
        }
        _ => body.boxed_unsync(),
    };
    Ok(Request::from_parts(parts, body))
}

/// Answers a CONNECT to a brokered `host:port` and serves the tunnel as HTTPS itself, with a
/// leaf of the fortress CA: each request inside is checked, rewritten and sent on by
/// [`terminated_request`].
fn terminate(
    proxy: Arc<Proxy>,
    permit: Arc<OwnedSemaphorePermit>,
    brokering: Arc<Brokering>,
    dest: Dest,
    port: u16,
    addrs: Vec<IpAddr>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let cfg = match ebroker::server_config(&brokering.ca, &dest) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(sandbox = %proxy.sandbox, host = %dest, "egress broker: cannot make a certificate: {e}");
            return text(
                StatusCode::BAD_GATEWAY,
                "clw-fortress: the egress proxy cannot make a certificate for this host\n".into(),
            );
        }
    };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(sandbox = %proxy.sandbox, "egress: upgrade failed: {e}");
                return;
            }
        };
        let tls = match tokio_rustls::TlsAcceptor::from(cfg)
            .accept(TokioIo::new(upgraded))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(sandbox = %proxy.sandbox, host = %dest, "egress broker: the sandbox's TLS handshake failed: {e}");
                return;
            }
        };
        let limits = proxy.limits;
        let service = hyper::service::service_fn({
            let proxy = proxy.clone();
            move |req| {
                terminated_request(
                    proxy.clone(),
                    permit.clone(),
                    brokering.clone(),
                    dest.clone(),
                    port,
                    addrs.clone(),
                    req,
                )
            }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.connect_timeout)
            .max_buf_size(limits.max_head_bytes.max(8192))
            .serve_connection(TokioIo::new(tls), service)
            .await;
        if let Err(e) = served {
            tracing::debug!(sandbox = %proxy.sandbox, "egress broker: connection ended: {e}");
        }
    });
    Response::new(Empty::new().map_err(|n| match n {}).boxed_unsync())
}

/// One request inside a terminated tunnel: checked and rewritten, then sent over a TLS
/// connection of the proxy's own to the checked addresses, verifying the host's certificate.
async fn terminated_request(
    proxy: Arc<Proxy>,
    permit: Arc<OwnedSemaphorePermit>,
    brokering: Arc<Brokering>,
    dest: Dest,
    port: u16,
    addrs: Vec<IpAddr>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (map, seed) = match proxy.broker_inputs(&brokering) {
        Ok(i) => i,
        Err(r) => return Ok(*r),
    };
    let bound = brokering.bound(&map, &seed, &proxy.sandbox);
    let req = match prepare(&proxy, &bound, &dest, port, req).await {
        Ok(r) => r,
        Err(r) => return Ok(*r),
    };
    drop(bound);
    drop(map);
    let bad_gateway = |what: &str| {
        text(
            StatusCode::BAD_GATEWAY,
            format!("clw-fortress: {dest}:{port}: {what}\n"),
        )
    };
    let Some(tcp) = proxy.connect(&addrs, port).await else {
        return Ok(bad_gateway("allowed but did not accept a connection"));
    };
    let Some(name) = ebroker::server_name(&dest) else {
        return Ok(bad_gateway("not a name a certificate can carry"));
    };
    let tls = match tokio::time::timeout(
        proxy.limits.connect_timeout,
        tokio_rustls::TlsConnector::from(brokering.upstream.clone()).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::warn!(sandbox = %proxy.sandbox, host = %dest, port, "egress broker: the upstream TLS handshake failed: {e}");
            return Ok(bad_gateway(&format!(
                "the upstream TLS handshake failed: {e}"
            )));
        }
        Err(_) => return Ok(bad_gateway("the upstream TLS handshake timed out")),
    };
    let authority = match (&dest, port) {
        (_, 443) => dest.to_string(),
        _ => dest.rule(port),
    };
    Ok(forward(proxy, permit, dest, port, authority, tls, req).await)
}

/// Sends one request upstream in origin form, with `authority` as its `Host`, and streams the
/// answer back.
async fn forward<T>(
    proxy: Arc<Proxy>,
    permit: Arc<OwnedSemaphorePermit>,
    dest: Dest,
    port: u16,
    authority: String,
    upstream: T,
    req: Request<ProxyBody>,
) -> Response<ProxyBody>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let bad_gateway = |what: &str| {
        text(
            StatusCode::BAD_GATEWAY,
            format!("clw-fortress: {dest}:{port}: {what}\n"),
        )
    };
    let (sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
        Ok(pair) => pair,
        Err(_) => return bad_gateway("the upstream handshake failed"),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut sender = sender;
    let (mut parts, body) = req.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .expect("a path and query is a valid origin-form URI");
    parts.version = hyper::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // The checked authority, not whatever Host the client wrote: another virtual host on the
    // same allowed address is another destination.
    if let Ok(v) = HeaderValue::from_str(&authority) {
        parts.headers.insert(HOST, v);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let body = Counted::new(body, counter.clone(), None).boxed_unsync();
    let sent = tokio::time::timeout(
        proxy.limits.idle_timeout,
        sender.send_request(Request::from_parts(parts, body)),
    )
    .await;
    let response = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => {
            proxy.allowed_done(&dest, port, counter.load(Ordering::Relaxed));
            return bad_gateway("the upstream exchange failed");
        }
        Err(_) => {
            proxy.allowed_done(&dest, port, counter.load(Ordering::Relaxed));
            return bad_gateway("the upstream did not answer in time");
        }
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let done: DoneFn = Box::new(move |bytes| {
        drop(permit);
        proxy.allowed_done(&dest, port, bytes);
    });
    Response::from_parts(
        parts,
        Counted::new(body, counter, Some(done)).boxed_unsync(),
    )
}

type DoneFn = Box<dyn FnOnce(u64) + Send>;

/// A body that adds its data bytes to `counter` and, when dropped (finished or abandoned),
/// reports the counter's total once.
struct Counted<B> {
    inner: B,
    counter: Arc<AtomicU64>,
    done: Option<DoneFn>,
}

impl<B> Counted<B> {
    fn new(inner: B, counter: Arc<AtomicU64>, done: Option<DoneFn>) -> Self {
        Counted {
            inner,
            counter,
            done,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.counter.load(Ordering::Relaxed));
        }
    }
}

/// Copies bytes both ways until both sides have closed, either fails, or nothing moved for
/// `idle`. Each direction half-closes its writer when its reader ends. Returns the bytes
/// carried in total.
pub async fn tunnel<A, B>(a: A, b: B, idle: Duration) -> u64
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last_ms = AtomicU64::new(0);
    let total = AtomicU64::new(0);
    let progress = Progress {
        last_ms: &last_ms,
        total: &total,
        start,
    };
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let both = async {
        let _ = tokio::try_join!(pump(ar, bw, &progress), pump(br, aw, &progress));
    };
    let watchdog = async {
        loop {
            let deadline = start + Duration::from_millis(last_ms.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        _ = both => {}
        _ = watchdog => {}
    }
    total.load(Ordering::Relaxed)
}

/// What both directions of a tunnel update: when a byte last moved, and how many did.
struct Progress<'a> {
    last_ms: &'a AtomicU64,
    total: &'a AtomicU64,
    start: Instant,
}

async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut r: R,
    mut w: W,
    p: &Progress<'_>,
) -> std::io::Result<()> {
    // 256 KiB: fewer wake-ups per megabyte on a bulk transfer (a loopback socket hands over
    // that much at once); measured in benches/egress_proxy.rs.
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return w.shutdown().await;
        }
        w.write_all(&buf[..n]).await?;
        p.total.fetch_add(n as u64, Ordering::Relaxed);
        p.last_ms
            .store(p.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Binds `addr` now, so a taken port fails the command at once.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { addr, source })
}

/// Serves `proxy` on `listener` until the task is dropped. One task per connection; beyond
/// `max_connections` a connection is answered 503 and closed.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(sandbox = %proxy.sandbox, "egress proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = proxy.permits.clone().try_acquire_owned() else {
            tracing::warn!(sandbox = %proxy.sandbox, %peer, "egress proxy: connection limit reached");
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
                          connection: close\r\ncontent-length: 41\r\n\r\n\
                          clw-fortress: too many open connections\n",
                    )
                    .await;
            });
            continue;
        };
        let permit = Arc::new(permit);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let limits = proxy.limits;
            let service = hyper::service::service_fn({
                let proxy = proxy.clone();
                let permit = permit.clone();
                move |req| handle(proxy.clone(), permit.clone(), req)
            });
            // half_close: a client that shuts its sending side after the request (`nc`, and
            // scripts built on it) still gets the answer; hyper would drop it otherwise.
            let served = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .timer(TokioTimer::new())
                .header_read_timeout(limits.connect_timeout)
                .max_buf_size(limits.max_head_bytes.max(8192))
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(sandbox = %proxy.sandbox, "egress proxy: connection ended: {e}");
            }
        });
    }
}
