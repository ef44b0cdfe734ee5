//! What Podman's Docker-compatible API does not do like Docker, absorbed here (measured on
//! Podman 4.3.1, the version Debian 12 ships):
//!
//! - `POST /containers/{id}/update` answers 404; `POST /libpod/containers/{id}/update` with
//!   OCI `LinuxResources` works (containers/podman#15067 added the compat endpoint later).
//! - That update changes only the live cgroup: both inspect endpoints keep reporting the
//!   create-time limits, and a restart reverts to them. The live limits are therefore read
//!   from the container's cgroup (libpod's `State.CgroupPath`) when the engine is local, so
//!   that drift and in-place updates are observed as they really are.
//! - With `ReadonlyRootfs`, Podman mounts writable tmpfs at `/tmp`, `/var/tmp` and `/run` on
//!   its own (`--read-only-tmpfs` defaults to true and the compat API cannot turn it off);
//!   undeclared ones are shadowed by read-only tmpfs mounts so that only the declared tmpfs
//!   mounts are writable.
//! - The compat list reports states Docker does not have (`stopped`), which bollard's typed
//!   model rejects, so the list is read untyped (`Libpod::list`).
//! - Compat inspect reports `CapDrop: ALL` expanded to the default capabilities; the bounding
//!   set libpod reports is translated back (`docker_caps`).
//!
//! Bollard's raw request builder is crate-private, so the few libpod calls go through a small
//! hyper client over the same unix socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector};

use super::{ContainerSummary, EngineError, EngineResult, Resources};
use crate::cgroup;

/// Libpod API version prefix; 4.0.0 is the oldest Podman whose compat API we support.
const LIBPOD_PREFIX: &str = "/v4.0.0/libpod";

/// The paths Podman's read-only-tmpfs default makes writable.
pub const AUTO_TMPFS: [&str; 3] = ["/tmp", "/var/tmp", "/run"];

/// Options of a tmpfs that shadows an automatic writable one: read-only and tiny.
pub const SHADOW_TMPFS: &str = "ro,size=4k,mode=0555,nosuid,nodev,noexec";

pub struct Libpod {
    socket_path: PathBuf,
}

impl Libpod {
    /// `None` when the engine is not on a unix socket (libpod calls need one).
    pub fn new(socket: &str) -> Option<Libpod> {
        let path = socket
            .strip_prefix("unix://")
            .or_else(|| socket.starts_with('/').then_some(socket))?;
        Some(Libpod {
            socket_path: PathBuf::from(path),
        })
    }

    async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<serde_json::Value>,
        op: &'static str,
        target: &str,
    ) -> EngineResult<Bytes> {
        let client: Client<UnixConnector, Full<Bytes>> = Client::unix();
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket_path, path).into();
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| http_error(op, target, e.to_string()))?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| http_error(op, target, e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| http_error(op, target, e.to_string()))?
            .to_bytes();
        if status.as_u16() == 404 {
            return Err(EngineError::NotFound(target.to_string()));
        }
        if !status.is_success() {
            return Err(EngineError::Refused {
                op,
                target: target.to_string(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&bytes).trim().to_string(),
            });
        }
        Ok(bytes)
    }

    /// Applies limits to the running container's cgroup.
    pub async fn update(&self, id: &str, r: &Resources) -> EngineResult<()> {
        self.request(
            hyper::Method::POST,
            &format!("{LIBPOD_PREFIX}/containers/{id}/update"),
            Some(oci_resources(r)),
            "update the limits of",
            id,
        )
        .await
        .map(|_| ())
    }

    /// Libpod's own inspect of the container (it holds what the compat one lacks).
    pub async fn inspect(&self, id: &str) -> EngineResult<serde_json::Value> {
        let bytes = self
            .request(
                hyper::Method::GET,
                &format!("{LIBPOD_PREFIX}/containers/{id}/json"),
                None,
                "inspect",
                id,
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| http_error("inspect", id, e.to_string()))
    }

    /// The compat container list, read without bollard's typed model: Podman reports states
    /// Docker's API does not define (measured on 4.3.1: `stopped`, for a container between
    /// its stop and its cleanup), and bollard then fails the whole list ("unknown variant
    /// `stopped`"), so one stopping container anywhere on the engine broke every `plan`.
    pub async fn list(&self, labels: &[String]) -> EngineResult<Vec<ContainerSummary>> {
        let mut path = "/v1.41/containers/json?all=true".to_string();
        if !labels.is_empty() {
            let filters = serde_json::json!({ "label": labels }).to_string();
            path.push_str("&filters=");
            path.push_str(&query_escape(&filters));
        }
        let bytes = self
            .request(
                hyper::Method::GET,
                &path,
                None,
                "list containers on",
                "engine",
            )
            .await?;
        let raw: Vec<CompatSummary> = serde_json::from_slice(&bytes)
            .map_err(|e| http_error("list containers on", "engine", e.to_string()))?;
        Ok(raw.into_iter().map(CompatSummary::into_summary).collect())
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompatSummary {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    image: String,
}

impl CompatSummary {
    fn into_summary(self) -> ContainerSummary {
        ContainerSummary {
            id: self.id,
            name: self
                .names
                .into_iter()
                .next()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            labels: self.labels.unwrap_or_default(),
            state: docker_state(&self.state).to_string(),
            image: self.image,
        }
    }
}

/// Podman's states in Docker's vocabulary: `stopped` (stopped, not yet cleaned up) and
/// `configured` (defined, never initialised) are what Docker calls `exited` and `created`.
pub fn docker_state(state: &str) -> &str {
    match state {
        "stopped" => "exited",
        "configured" => "created",
        other => other,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a query value.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The container's cgroup path relative to the cgroup root, from libpod's inspect.
pub fn cgroup_path(libpod_inspect: &serde_json::Value) -> Option<String> {
    libpod_inspect["State"]["CgroupPath"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

/// The capabilities as Docker would report the same bounding set: `(CapDrop, CapAdd)` =
/// `(["ALL"], <bounding set>)`. Podman's compat inspect reports a drop of ALL expanded to the
/// defaults it dropped (measured on 4.3.1: `--cap-drop ALL` reads back as 14 names, no `ALL`,
/// and `--cap-drop ALL --cap-add NET_BIND_SERVICE` as 13 dropped and `CapAdd: []`), so it
/// cannot tell "ALL dropped" from "the defaults dropped" nor show what was added back.
/// Libpod's `BoundingCaps` is the set in force (`null` when empty). `None` when libpod does
/// not report it: then the compat answer is kept as it is.
pub fn docker_caps(libpod_inspect: &serde_json::Value) -> Option<(Vec<String>, Vec<String>)> {
    let bounding = libpod_inspect.as_object()?.get("BoundingCaps")?;
    let kept: Vec<String> = match bounding {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(caps) => caps
            .iter()
            .map(|c| crate::spec::capability(c.as_str().unwrap_or_default()))
            .collect(),
        _ => return None,
    };
    Some((vec!["ALL".to_string()], kept))
}

fn http_error(op: &'static str, target: &str, message: String) -> EngineError {
    EngineError::Http {
        op,
        target: target.to_string(),
        message,
    }
}

/// The OCI `LinuxResources` body libpod's update endpoint takes. CPUs become a CFS quota over
/// the default 100 ms period, which is what `NanoCpus` means to runc.
pub fn oci_resources(r: &Resources) -> serde_json::Value {
    const PERIOD: i64 = 100_000;
    let mut body = serde_json::Map::new();
    let mut memory = serde_json::Map::new();
    if let Some(m) = r.memory {
        memory.insert("limit".into(), m.into());
    }
    if let Some(s) = r.memory_swap {
        memory.insert("swap".into(), s.into());
    }
    if !memory.is_empty() {
        body.insert("memory".into(), memory.into());
    }
    if let Some(n) = r.nano_cpus {
        body.insert(
            "cpu".into(),
            serde_json::json!({"quota": n * PERIOD / 1_000_000_000, "period": PERIOD}),
        );
    }
    if let Some(p) = r.pids_limit {
        body.insert("pids".into(), serde_json::json!({ "limit": p }));
    }
    serde_json::Value::Object(body)
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// A limit file as the engines' `Resources` hold it: `None` when unlimited or unreadable.
fn limit(path: &Path) -> Option<i64> {
    read_trim(path).and_then(|s| cgroup::limit(&s)).flatten()
}

/// A memory limit in the engines' terms, where `0` means "no limit" rather than "no memory".
fn bytes_limit(v: Option<i64>) -> Option<i64> {
    v.filter(|b| *b > 0)
}

/// The limits in force for the cgroup at `cgroup_path` (e.g. `/libpod_parent/libpod-<id>`),
/// read from `cgroup_root` (normally `/sys/fs/cgroup`), v2 unified or v1 per-controller.
/// `None` when nothing could be read (remote engine, no permission).
pub fn live_limits(cgroup_root: &Path, cgroup_path: &str) -> Option<Resources> {
    let rel = cgroup_path.trim_start_matches('/');
    let v2 = cgroup_root.join(rel);
    if v2.join("cgroup.controllers").exists() {
        let memory = bytes_limit(limit(&v2.join("memory.max")));
        let swap = limit(&v2.join("memory.swap.max"));
        let cpu = read_trim(&v2.join("cpu.max")).and_then(|s| cgroup::cpu_max(&s).flatten());
        return Some(Resources {
            memory,
            // v2 counts swap separately; the engines' MemorySwap is memory + swap.
            memory_swap: memory.zip(swap).map(|(m, s)| m + s),
            nano_cpus: cpu.map(cgroup::CpuQuota::nano_cpus),
            pids_limit: limit(&v2.join("pids.max")),
        });
    }
    let mem = cgroup_root.join("memory").join(rel);
    let cpu = cgroup_root.join("cpu").join(rel);
    let pids = cgroup_root.join("pids").join(rel);
    if !mem.exists() && !pids.exists() && !cpu.exists() {
        return None;
    }
    let quota = read_trim(&cpu.join("cpu.cfs_quota_us"))
        .zip(read_trim(&cpu.join("cpu.cfs_period_us")))
        .and_then(|(q, p)| cgroup::cfs_quota(&q, &p).flatten());
    Some(Resources {
        memory: bytes_limit(limit(&mem.join("memory.limit_in_bytes"))),
        memory_swap: bytes_limit(limit(&mem.join("memory.memsw.limit_in_bytes"))),
        nano_cpus: quota.map(cgroup::CpuQuota::nano_cpus),
        pids_limit: limit(&pids.join("pids.max")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn v1_live_limits_are_read_per_controller() {
        let d = tempfile::tempdir().unwrap();
        let c = "libpod_parent/libpod-abc";
        write(
            d.path(),
            &format!("memory/{c}/memory.limit_in_bytes"),
            "67108864\n",
        );
        write(
            d.path(),
            &format!("memory/{c}/memory.memsw.limit_in_bytes"),
            "134217728\n",
        );
        write(d.path(), &format!("cpu/{c}/cpu.cfs_quota_us"), "25000\n");
        write(d.path(), &format!("cpu/{c}/cpu.cfs_period_us"), "100000\n");
        write(d.path(), &format!("pids/{c}/pids.max"), "99\n");
        let r = live_limits(d.path(), &format!("/{c}")).unwrap();
        assert_eq!(
            r,
            Resources {
                memory: Some(64 << 20),
                memory_swap: Some(128 << 20),
                nano_cpus: Some(250_000_000),
                pids_limit: Some(99),
            }
        );
    }

    #[test]
    fn unlimited_spellings_read_as_none() {
        let d = tempfile::tempdir().unwrap();
        let c = "x";
        write(
            d.path(),
            "memory/x/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(d.path(), "cpu/x/cpu.cfs_quota_us", "-1\n");
        write(d.path(), "cpu/x/cpu.cfs_period_us", "100000\n");
        write(d.path(), "pids/x/pids.max", "max\n");
        assert_eq!(live_limits(d.path(), c).unwrap(), Resources::default());
    }

    #[test]
    fn v2_live_limits_add_swap_to_memory() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "machine.slice/libpod-abc.scope/cgroup.controllers",
            "cpu memory pids\n",
        );
        write(
            d.path(),
            "machine.slice/libpod-abc.scope/memory.max",
            "67108864\n",
        );
        write(
            d.path(),
            "machine.slice/libpod-abc.scope/memory.swap.max",
            "0\n",
        );
        write(
            d.path(),
            "machine.slice/libpod-abc.scope/cpu.max",
            "50000 100000\n",
        );
        write(d.path(), "machine.slice/libpod-abc.scope/pids.max", "64\n");
        let r = live_limits(d.path(), "/machine.slice/libpod-abc.scope").unwrap();
        assert_eq!(r.memory, Some(64 << 20));
        assert_eq!(r.memory_swap, Some(64 << 20));
        assert_eq!(r.nano_cpus, Some(500_000_000));
        assert_eq!(r.pids_limit, Some(64));
    }

    #[test]
    fn a_missing_cgroup_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(live_limits(d.path(), "/nope"), None);
    }

    #[test]
    fn podman_only_states_read_as_docker_states_and_the_list_parses() {
        let body = r#"[{"Id":"abc","Names":["/s1"],"Labels":{"k":"v"},"State":"stopped","Image":"i"},
                       {"Id":"def","Names":[],"Labels":null,"State":"running","Image":"i"}]"#;
        let raw: Vec<CompatSummary> = serde_json::from_str(body).unwrap();
        let list: Vec<ContainerSummary> = raw.into_iter().map(|c| c.into_summary()).collect();
        assert_eq!(list[0].name, "s1");
        assert_eq!(list[0].state, "exited");
        assert_eq!(list[0].labels["k"], "v");
        assert_eq!(list[1].state, "running");
        assert!(list[1].labels.is_empty());
        assert_eq!(docker_state("configured"), "created");
        assert_eq!(
            query_escape(r#"{"label":["a=1"]}"#),
            "%7B%22label%22%3A%5B%22a%3D1%22%5D%7D"
        );
    }

    #[test]
    fn the_bounding_set_is_reported_as_docker_would_report_it() {
        let all_dropped = serde_json::json!({"BoundingCaps": null, "EffectiveCaps": null});
        assert_eq!(
            docker_caps(&all_dropped),
            Some((vec!["ALL".to_string()], vec![]))
        );
        let one_kept = serde_json::json!({"BoundingCaps": ["CAP_NET_BIND_SERVICE"]});
        assert_eq!(
            docker_caps(&one_kept),
            Some((
                vec!["ALL".to_string()],
                vec!["NET_BIND_SERVICE".to_string()]
            ))
        );
        let defaults = serde_json::json!({"BoundingCaps": ["CAP_CHOWN", "CAP_SYS_ADMIN"]});
        assert_eq!(
            docker_caps(&defaults).unwrap().1,
            ["CHOWN".to_string(), "SYS_ADMIN".to_string()]
        );
        assert_eq!(docker_caps(&serde_json::json!({"State": {}})), None);
    }

    #[test]
    fn oci_body_expresses_cpus_as_a_cfs_quota() {
        let body = oci_resources(&Resources {
            memory: Some(1 << 26),
            memory_swap: Some(1 << 26),
            nano_cpus: Some(250_000_000),
            pids_limit: Some(48),
        });
        assert_eq!(
            body,
            serde_json::json!({
                "memory": {"limit": 67108864, "swap": 67108864},
                "cpu": {"quota": 25000, "period": 100000},
                "pids": {"limit": 48}
            })
        );
    }
}
