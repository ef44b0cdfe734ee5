//! What the egress proxy adds, on loopback: per-request latency of a plain-HTTP GET (a new
//! connection each, as a sandbox's tools mostly do) and the throughput of a CONNECT tunnel,
//! each through the proxy and direct. Asserts nothing about time; prints figures.
//!
//! `cargo bench --bench egress_proxy` (release build). `CLW_BENCH_REQUESTS` (default 2000) and
//! `CLW_BENCH_TUNNEL_MIB` (default 512) change the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clw_fortress::daemon::metrics::Metrics;
use clw_fortress::egress::policy::{parse_allow_entry, EgressPolicy};
use clw_fortress::egress::proxy::{self, Proxy, ProxyLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Answers a GET with a short body; reads anything else to EOF and answers its byte count.
async fn upstream(listener: TcpListener) {
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            if buf[..n].starts_with(b"GET ") {
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                return;
            }
            let mut total = n as u64;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
            let _ = s.write_all(total.to_string().as_bytes()).await;
        });
    }
}

async fn get(addr: &str, request: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(out.ends_with(b"ok"), "{}", String::from_utf8_lossy(&out));
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

async fn latency(n: usize, addr: &str, request: &[u8]) -> (f64, f64) {
    for _ in 0..50 {
        get(addr, request).await;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        get(addr, request).await;
        times.push(t.elapsed());
    }
    times.sort();
    (pct(&times, 0.50), pct(&times, 0.99))
}

/// Sends `bytes` through `s` (already connected or tunnelled) and waits for the count back.
async fn push(mut s: TcpStream, bytes: usize) -> f64 {
    let chunk = vec![0x5au8; 256 * 1024];
    let t = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await.unwrap();
        left -= n;
    }
    s.shutdown().await.unwrap();
    let mut back = String::new();
    s.read_to_string(&mut back).await.unwrap();
    assert_eq!(
        back.trim_start_matches(|c: char| !c.is_ascii_digit()),
        bytes.to_string()
    );
    bytes as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64()
}

async fn tunnel(proxy: &str, up_port: u16) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT up.test:{up_port} HTTP/1.1\r\nhost: up.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    s
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("egress_proxy: run with `cargo bench --bench egress_proxy`");
        return;
    }
    let requests = env_usize("CLW_BENCH_REQUESTS", 2000);
    let mib = env_usize("CLW_BENCH_TUNNEL_MIB", 512);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_port = up.local_addr().unwrap().port();
        tokio::spawn(upstream(up));
        let policy = EgressPolicy {
            allow: vec![parse_allow_entry(&format!("up.test:{up_port}")).unwrap()],
            hosts: [("up.test".to_string(), "127.0.0.1".parse().unwrap())].into(),
        };
        let p = Proxy::new(
            "bench",
            "sbx",
            policy,
            ProxyLimits::default(),
            None,
            Arc::new(Metrics::new()),
        );
        let listener = proxy::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let proxy_addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(proxy::serve(listener, Arc::new(p)));
        let direct = format!("127.0.0.1:{up_port}");

        let req = b"GET /x HTTP/1.1\r\nhost: up.test\r\nconnection: close\r\n\r\n";
        let proxied = format!(
            "GET http://up.test:{up_port}/x HTTP/1.1\r\nhost: up.test\r\nconnection: close\r\n\r\n"
        );
        let (d50, d99) = latency(requests, &direct, req).await;
        let (p50, p99) = latency(requests, &proxy_addr, proxied.as_bytes()).await;
        println!("plain GET, new connection each, {requests} requests (microseconds):");
        println!("  direct       p50 {d50:8.1}  p99 {d99:8.1}");
        println!("  via proxy    p50 {p50:8.1}  p99 {p99:8.1}");
        println!(
            "  added        p50 {:8.1}  p99 {:8.1}",
            p50 - d50,
            p99 - d99
        );

        let bytes = mib << 20;
        let direct_mibs = push(TcpStream::connect(&direct).await.unwrap(), bytes).await;
        let tunnel_mibs = push(tunnel(&proxy_addr, up_port).await, bytes).await;
        println!("tunnel throughput, {mib} MiB one way (MiB/s):");
        println!("  direct     {direct_mibs:8.0}");
        println!("  via proxy  {tunnel_mibs:8.0}");
    });
}
