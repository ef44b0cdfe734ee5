//! The bollard-backed [`Engine`] for Docker and Podman's Docker-compatible API.
//!
//! Wire-level differences between the flavors are absorbed here and nowhere else:
//! - the API version is negotiated after connecting (bollard 0.21 speaks 1.53 by default,
//!   Debian's dockerd 20.10 only 1.41), from the one `/version` answer a connection asks for,
//!   which also names the flavor and serves `info`;
//! - seccomp profiles go inline to Docker but as a file path to Podman, whose compat API reads
//!   `seccomp=` as a path on the engine host (seccomp.md, "Delivery to the engine").

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerUpdateBody, EventMessage, HostConfig,
    Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountType,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, EventsOptions, ListContainersOptions,
    RemoveContainerOptions, RestartContainerOptions, StopContainerOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::podman::{self, Libpod};
use super::{
    security, ByteStream, Container, ContainerSummary, CreateRequest, Engine, EngineError,
    EngineInfo, EngineResult, Event, EventKind, EventStream, ExecOutput, ExecRequest, Flavor,
    Resources,
};

/// How long one engine request may take before bollard gives up, in seconds.
const REQUEST_TIMEOUT_S: u64 = 120;

/// What the engine's `/version` said when this connection was made.
#[derive(Debug, Clone)]
struct ServerVersion {
    flavor: Flavor,
    version: String,
    api_version: String,
    kernel: String,
}

impl ServerVersion {
    fn of(v: &bollard::models::SystemVersion) -> ServerVersion {
        ServerVersion {
            flavor: flavor_of(v),
            version: v.version.clone().unwrap_or_default(),
            api_version: v.api_version.clone().unwrap_or_default(),
            kernel: v.kernel_version.clone().unwrap_or_default(),
        }
    }
}

/// A connected engine.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    socket: String,
    server: ServerVersion,
    /// Where Podman-bound seccomp profiles are written (content-addressed).
    profile_dir: PathBuf,
    /// The host's cgroup root, where Podman's live limits are read (see `podman`).
    cgroup_root: PathBuf,
}

impl DockerEngine {
    /// Connects to `socket` (`unix://`, `tcp://` or `http://`), negotiates the API version and
    /// asks the engine which flavor it is. `profile_dir` receives seccomp profiles for Podman.
    pub async fn connect(socket: &str, profile_dir: PathBuf) -> EngineResult<Self> {
        Self::connect_expecting(socket, profile_dir, None).await
    }

    /// [`DockerEngine::connect`], then refuses an engine of another flavor than `declared`
    /// (the manifest's `engine.flavor`; `None` for `auto`) with
    /// [`EngineError::FlavorMismatch`].
    pub async fn connect_expecting(
        socket: &str,
        profile_dir: PathBuf,
        declared: Option<Flavor>,
    ) -> EngineResult<Self> {
        let client = |version: &ClientVersion| {
            if let Some(path) = socket.strip_prefix("unix://") {
                Docker::connect_with_unix(path, REQUEST_TIMEOUT_S, version)
            } else if socket.starts_with("tcp://") || socket.starts_with("http://") {
                Docker::connect_with_http(socket, REQUEST_TIMEOUT_S, version)
            } else {
                Docker::connect_with_unix(socket, REQUEST_TIMEOUT_S, version)
            }
            .map_err(|source| EngineError::Unreachable {
                socket: socket.to_string(),
                source,
            })
        };
        if !(socket.starts_with("unix://")
            || socket.starts_with("tcp://")
            || socket.starts_with("http://")
            || socket.starts_with('/'))
        {
            return Err(EngineError::BadSocket(socket.to_string()));
        }
        // One `/version` per connection: it negotiates the API version, names the flavor and
        // is kept for `info`. (bollard's `negotiate_version` would ask for it once more.)
        let version = client(bollard::API_DEFAULT_VERSION)?
            .version()
            .await
            .map_err(|e| classify_connect_error(socket, e))?;
        let server = ServerVersion::of(&version);
        if let Some(declared) = declared.filter(|d| *d != server.flavor) {
            return Err(EngineError::FlavorMismatch {
                socket: socket.to_string(),
                declared,
                found: server.flavor,
            });
        }
        Ok(DockerEngine {
            docker: client(&negotiated(&server.api_version))?,
            socket: socket.to_string(),
            server,
            profile_dir,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        })
    }

    pub fn flavor(&self) -> Flavor {
        self.server.flavor
    }

    /// The raw bollard client, for the few callers that need an endpoint the trait lacks.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Docker reads the profile inline; Podman's compat API reads `seccomp=` as a path
    /// (measured on Podman 4.3.1: inline JSON fails with "opening seccomp profile failed").
    fn libpod(&self, op: &'static str, target: &str) -> EngineResult<Libpod> {
        Libpod::new(&self.socket).ok_or_else(|| EngineError::Http {
            op,
            target: target.to_string(),
            message: format!(
                "Podman's libpod endpoints are reached over a unix socket, not {}",
                self.socket
            ),
        })
    }

    /// Podman's compat inspect reports create-time limits after an update and an expanded
    /// `CapDrop` (see `podman`); replace them with what the cgroup enforces (when readable
    /// from here) and with the bounding set libpod reports, in Docker's vocabulary.
    async fn patch_from_libpod(&self, id: &str, c: &mut ContainerInspectResponse) {
        let Ok(libpod) = self.libpod("inspect", id) else {
            return;
        };
        let lp = match libpod.inspect(id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(container = id, error = %e, "no libpod inspect");
                return;
            }
        };
        let hc = c.host_config.get_or_insert_with(Default::default);
        if let Some((drop, add)) = podman::docker_caps(&lp) {
            hc.cap_drop = Some(drop);
            hc.cap_add = Some(add);
        }
        let Some(path) = podman::cgroup_path(&lp) else {
            return;
        };
        let Some(live) = podman::live_limits(&self.cgroup_root, &path) else {
            tracing::debug!(container = id, cgroup = %path, "cgroup not readable; using inspect");
            return;
        };
        hc.memory = live.memory;
        hc.memory_swap = live.memory_swap;
        hc.nano_cpus = live.nano_cpus;
        hc.pids_limit = live.pids_limit;
    }

    fn seccomp_opt(&self, profile: &str) -> EngineResult<String> {
        match self.server.flavor {
            Flavor::Docker => Ok(format!("seccomp={profile}")),
            Flavor::Podman => {
                let digest = hex::encode(Sha256::digest(profile.as_bytes()));
                let path = self
                    .profile_dir
                    .join(format!("seccomp-{}.json", &digest[..16]));
                write_profile(&path, profile).map_err(|source| EngineError::ProfileWrite {
                    path: path.display().to_string(),
                    source,
                })?;
                Ok(format!("seccomp={}", path.display()))
            }
        }
    }
}

fn write_profile(path: &std::path::Path, profile: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, profile)?;
    // 0644: the engine (possibly another user, for rootless setups) must read it.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}

/// The API version to speak: the server's when it is older than bollard's default (bollard's
/// `negotiate_version` rule), the default when it is newer or unreadable.
fn negotiated(server_api: &str) -> ClientVersion {
    let default = *bollard::API_DEFAULT_VERSION;
    let parsed = server_api
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    match parsed {
        Some((major_version, minor_version)) => {
            let server = ClientVersion {
                major_version,
                minor_version,
            };
            if server < default {
                server
            } else {
                default
            }
        }
        None => default,
    }
}

/// Podman's `/version` lists a component named "Podman Engine"; Docker's "Engine".
fn flavor_of(v: &bollard::models::SystemVersion) -> Flavor {
    let podman = v
        .components
        .iter()
        .flatten()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"));
    if podman {
        Flavor::Podman
    } else {
        Flavor::Docker
    }
}

fn classify_connect_error(socket: &str, e: bollard::errors::Error) -> EngineError {
    let text = format!("{e:?}").to_ascii_lowercase();
    if text.contains("permission denied") {
        EngineError::SocketPermission {
            socket: socket.to_string(),
            source: e,
        }
    } else {
        EngineError::Unreachable {
            socket: socket.to_string(),
            source: e,
        }
    }
}

fn request_error(op: &'static str, target: &str, e: bollard::errors::Error) -> EngineError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            // A 404 on create is the image (or a named network) missing, not the container:
            // keep the engine's message so the failure can be classified (engine::failure).
            if status_code == 404 && op != "create" {
                EngineError::NotFound(target.to_string())
            } else {
                EngineError::Refused {
                    op,
                    target: target.to_string(),
                    status: status_code,
                    message,
                }
            }
        }
        other => EngineError::Request {
            op,
            target: target.to_string(),
            source: other,
        },
    }
}

fn to_create_body(
    req: &CreateRequest,
    seccomp_opt: Option<String>,
    flavor: Flavor,
) -> ContainerCreateBody {
    let mut tmpfs: HashMap<String, String> = req.tmpfs.clone().into_iter().collect();
    if flavor == Flavor::Podman && req.read_only_root {
        for path in podman::AUTO_TMPFS {
            tmpfs
                .entry(path.to_string())
                .or_insert_with(|| podman::SHADOW_TMPFS.to_string());
        }
    }
    let mounts = req
        .binds
        .iter()
        .map(|b| Mount {
            target: Some(b.target.clone()),
            source: Some(b.source.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(b.read_only),
            // rprivate: nothing mounted later on the host leaks into the sandbox, and nothing
            // the sandbox mounts leaks out.
            bind_options: Some(MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::RPRIVATE),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let mut security_opt = Vec::new();
    if req.no_new_privileges {
        security_opt.push("no-new-privileges:true".to_string());
    }
    security_opt.extend(seccomp_opt);
    ContainerCreateBody {
        image: Some(req.image.clone()),
        user: Some(req.user.clone()),
        env: Some(req.env.clone()),
        cmd: if req.cmd.is_empty() {
            None
        } else {
            Some(req.cmd.clone())
        },
        labels: Some(req.labels.clone().into_iter().collect()),
        network_disabled: Some(req.network_mode == "none"),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            tmpfs: Some(tmpfs),
            readonly_rootfs: Some(req.read_only_root),
            init: Some(req.init),
            cap_drop: Some(req.cap_drop.clone()),
            cap_add: Some(req.cap_add.clone()),
            security_opt: Some(security_opt),
            network_mode: Some(req.network_mode.clone()),
            privileged: Some(false),
            ipc_mode: Some("private".into()),
            memory: req.resources.memory,
            memory_swap: req.resources.memory_swap,
            nano_cpus: req.resources.nano_cpus,
            pids_limit: req.resources.pids_limit,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn event_kind(action: &str) -> EventKind {
    // Docker suffixes some actions ("exec_start: sh -c ...", "health_status: healthy");
    // Podman says "died" where Docker says "die".
    let head = action.split(':').next().unwrap_or("").trim();
    match head {
        "create" => EventKind::Create,
        "start" => EventKind::Start,
        "die" | "died" => EventKind::Die,
        "oom" => EventKind::Oom,
        "stop" => EventKind::Stop,
        "kill" => EventKind::Kill,
        "destroy" | "remove" => EventKind::Destroy,
        "update" => EventKind::Update,
        _ => EventKind::Other,
    }
}

fn to_event(m: EventMessage) -> Option<Event> {
    let actor = m.actor?;
    let mut labels: BTreeMap<String, String> =
        actor.attributes.unwrap_or_default().into_iter().collect();
    let name = labels.remove("name").unwrap_or_default();
    labels.remove("image");
    Some(Event {
        kind: event_kind(m.action.as_deref().unwrap_or("")),
        id: actor.id.unwrap_or_default(),
        name,
        labels,
        time_nano: m.time_nano.unwrap_or_default(),
    })
}

impl Engine for DockerEngine {
    fn socket(&self) -> &str {
        &self.socket
    }

    async fn info(&self) -> EngineResult<EngineInfo> {
        let v = &self.server;
        let i = self
            .docker
            .info()
            .await
            .map_err(|e| request_error("read the info of", &self.socket, e))?;
        let security_options = i.security_options.clone().unwrap_or_default();
        Ok(EngineInfo {
            flavor: v.flavor,
            version: v.version.clone(),
            api_version: v.api_version.clone(),
            kernel: v.kernel.clone(),
            rootless: security_options.iter().any(|o| o.contains("rootless")),
            security_options,
            cgroup_version: i.cgroup_version.map(|c| c.to_string()).unwrap_or_default(),
            ncpu: i.ncpu.unwrap_or_default(),
        })
    }

    async fn list(&self, labels: &[String]) -> EngineResult<Vec<ContainerSummary>> {
        if self.server.flavor == Flavor::Podman {
            return self
                .libpod("list containers on", "engine")?
                .list(labels)
                .await;
        }
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        if !labels.is_empty() {
            filters.insert("label".into(), labels.to_vec());
        }
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| request_error("list containers on", &self.socket, e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                image: c.image.unwrap_or_default(),
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> EngineResult<Option<Container>> {
        match self.docker.inspect_container(id, None).await {
            Ok(mut c) => {
                if self.server.flavor == Flavor::Podman {
                    self.patch_from_libpod(id, &mut c).await;
                }
                Ok(Some(Container::from_inspect(&c, security::read_profile)))
            }
            Err(e) => match request_error("inspect", id, e) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn create(&self, req: &CreateRequest) -> EngineResult<String> {
        let seccomp = match &req.seccomp_profile {
            Some(p) => Some(self.seccomp_opt(p)?),
            None => None,
        };
        let opts = CreateContainerOptions {
            name: Some(req.name.clone()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(opts), to_create_body(req, seccomp, self.server.flavor))
            .await
            .map_err(|e| request_error("create", &req.name, e))?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> EngineResult<()> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| request_error("start", id, e))
    }

    async fn stop(&self, id: &str, timeout_s: i64) -> EngineResult<()> {
        let opts = StopContainerOptions {
            t: Some(timeout_s as i32),
            ..Default::default()
        };
        match self.docker.stop_container(id, Some(opts)).await {
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            r => r.map_err(|e| request_error("stop", id, e)),
        }
    }

    async fn restart(&self, id: &str, timeout_s: i64) -> EngineResult<()> {
        let opts = RestartContainerOptions {
            t: Some(timeout_s as i32),
            ..Default::default()
        };
        self.docker
            .restart_container(id, Some(opts))
            .await
            .map_err(|e| request_error("restart", id, e))
    }

    async fn remove(&self, id: &str) -> EngineResult<()> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => match request_error("remove", id, e) {
                EngineError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn update_resources(&self, id: &str, r: &Resources) -> EngineResult<()> {
        if self.server.flavor == Flavor::Podman {
            return self.libpod("update the limits of", id)?.update(id, r).await;
        }
        let body = ContainerUpdateBody {
            memory: r.memory,
            memory_swap: r.memory_swap,
            nano_cpus: r.nano_cpus,
            pids_limit: r.pids_limit,
            ..Default::default()
        };
        self.docker
            .update_container(id, body)
            .await
            .map_err(|e| request_error("update the limits of", id, e))
    }

    async fn disconnect_network(&self, id: &str, network: &str) -> EngineResult<()> {
        // Podman's compat API takes the same request (measured on 4.3).
        let body = bollard::models::NetworkDisconnectRequest {
            container: id.to_string(),
            force: Some(true),
        };
        self.docker
            .disconnect_network(network, body)
            .await
            .map_err(|e| request_error("detach from its network", id, e))
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> EngineResult<ExecOutput> {
        // `ExecRequest`'s Debug names the env keys only: their values may be secrets.
        tracing::debug!(container = id, request = ?req, "exec");
        let env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let opts = CreateExecOptions {
            cmd: Some(req.cmd.clone()),
            env: if env.is_empty() { None } else { Some(env) },
            user: req.user.clone(),
            working_dir: req.workdir.clone(),
            attach_stdin: Some(req.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, opts)
            .await
            .map_err(|e| request_error("exec in", id, e))?;
        let mut out = ExecOutput::default();
        match self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| request_error("start an exec in", id, e))?
        {
            StartExecResults::Attached {
                mut output,
                mut input,
            } => {
                if let Some(data) = &req.stdin {
                    // A sandbox that closes stdin early is not an engine failure.
                    let _ = input.write_all(data).await;
                    let _ = input.shutdown().await;
                }
                drop(input);
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(|e| request_error("read exec output from", id, e))? {
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            out.stdout.extend_from_slice(&message)
                        }
                        LogOutput::StdErr { message } => out.stderr.extend_from_slice(&message),
                        LogOutput::StdIn { .. } => {}
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        // The output stream ends when the process closes its pipes; its exit code can land in
        // the engine a moment later.
        for _ in 0..100 {
            let inspected = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(|e| request_error("inspect an exec in", id, e))?;
            if inspected.running != Some(true) {
                out.exit_code = inspected.exit_code.unwrap_or(-1);
                return Ok(out);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        out.exit_code = -1;
        Ok(out)
    }

    fn events(&self) -> EventStream {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let opts = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let socket = self.socket.clone();
        Box::pin(
            self.docker
                .events(Some(opts))
                .map_err(move |e| classify_connect_error(&socket, e))
                .try_filter_map(|m| async move { Ok(to_event(m)) }),
        )
    }

    fn archive(&self, id: &str, path: &str) -> ByteStream {
        let opts = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let target = format!("{id}:{path}");
        Box::pin(
            self.docker
                .download_from_container(id, Some(opts))
                .map_err(move |e| request_error("archive", &target, e)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_spoken_is_the_older_of_the_servers_and_bollards() {
        let default = bollard::API_DEFAULT_VERSION.to_string();
        for (server, spoken) in [
            ("1.41", "1.41"),
            ("1.9", "1.9"),
            ("1.99", default.as_str()),
            ("2.0", default.as_str()),
            ("", default.as_str()),
            ("one.two", default.as_str()),
        ] {
            assert_eq!(negotiated(server).to_string(), spoken, "{server}");
        }
    }

    #[test]
    fn event_actions_of_both_flavors_map_to_one_vocabulary() {
        for (action, kind) in [
            ("create", EventKind::Create),
            ("start", EventKind::Start),
            ("die", EventKind::Die),
            ("died", EventKind::Die),
            ("oom", EventKind::Oom),
            ("exec_start: sh -c true", EventKind::Other),
            ("health_status: healthy", EventKind::Other),
            ("destroy", EventKind::Destroy),
            ("remove", EventKind::Destroy),
            ("update", EventKind::Update),
        ] {
            assert_eq!(event_kind(action), kind, "{action}");
        }
    }

    #[test]
    fn on_podman_undeclared_automatic_tmpfs_mounts_are_shadowed_read_only() {
        let req = CreateRequest {
            read_only_root: true,
            tmpfs: BTreeMap::from([("/tmp".to_string(), "size=1m,mode=1777".to_string())]),
            ..Default::default()
        };
        let podman = to_create_body(&req, None, Flavor::Podman)
            .host_config
            .unwrap();
        let t = podman.tmpfs.unwrap();
        assert_eq!(t["/tmp"], "size=1m,mode=1777", "declared mount kept");
        assert_eq!(t["/var/tmp"], podman::SHADOW_TMPFS);
        assert_eq!(t["/run"], podman::SHADOW_TMPFS);
        let docker = to_create_body(&req, None, Flavor::Docker)
            .host_config
            .unwrap();
        assert_eq!(
            docker.tmpfs.unwrap().len(),
            1,
            "docker adds none of its own"
        );
    }

    #[test]
    fn create_body_carries_every_hardening_field_and_no_secret() {
        let req = CreateRequest {
            name: "s".into(),
            image: "img".into(),
            user: "1000:1000".into(),
            env: vec!["LANG=C.UTF-8".into()],
            binds: vec![super::super::BindMount {
                source: "/h/logs".into(),
                target: "/logs".into(),
                read_only: true,
            }],
            read_only_root: true,
            cap_drop: vec!["ALL".into()],
            no_new_privileges: true,
            network_mode: "none".into(),
            resources: Resources {
                memory: Some(64 << 20),
                memory_swap: Some(64 << 20),
                nano_cpus: Some(500_000_000),
                pids_limit: Some(64),
            },
            ..Default::default()
        };
        let body = to_create_body(&req, Some("seccomp={}".into()), Flavor::Docker);
        let hc = body.host_config.unwrap();
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.privileged, Some(false));
        assert_eq!(
            hc.security_opt,
            Some(vec![
                "no-new-privileges:true".to_string(),
                "seccomp={}".to_string()
            ])
        );
        let m = &hc.mounts.unwrap()[0];
        assert_eq!(m.read_only, Some(true));
        assert_eq!(hc.pids_limit, Some(64));
    }
}
