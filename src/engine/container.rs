//! The crate's own view of an inspected container, built once in the adapter from the engine's
//! wire model, so that no module outside `engine/` depends on bollard's types or has to know
//! which of its fields are optional, nested or reported differently by Podman.
//!
//! Every capability reads the same facts from here: names without the leading `/`, limits as
//! [`Resources`], capabilities normalised (`spec::capability`), mounts with the engine's init
//! left in (callers that compare with a spec use [`SecurityView::mounts`], which leaves it out).

use std::collections::BTreeMap;

use bollard::models::{ContainerInspectResponse, HealthStatusEnum};

use super::security::SecurityView;
use super::Resources;

/// A container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Container {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: RunState,
    /// The limits in force (on Podman: read back from the cgroup where the adapter can).
    pub resources: Resources,
    /// `HostConfig.CpuQuota`: some tools limit CPU by quota instead of `NanoCpus`.
    pub cpu_quota: Option<i64>,
    /// How often the engine itself restarted it (its restart policy), not clw-fortress.
    pub restart_count: i64,
    pub mounts: Vec<Mount>,
    /// `HostConfig.Tmpfs`: mount point -> options.
    pub tmpfs: BTreeMap<String, String>,
    /// What the container runs with, for drift and verify.
    pub security: SecurityView,
    /// `HostConfig.SecurityOpt` verbatim (`seccomp=...`, `apparmor=...`, `label=...`).
    pub security_opt: Vec<String>,
    /// The AppArmor profile the engine applied (empty when AppArmor is not active).
    pub apparmor_profile: String,
    /// The process the container runs: its path, then its arguments.
    pub command: Vec<String>,
    /// The configured environment (`Config.Env`), `KEY=VALUE`: verify searches it for secret
    /// values, so its `Debug` shows the names only.
    pub env: ConfiguredEnv,
    /// Host devices handed in (their host paths), GPU requests and device cgroup rules.
    pub devices: Vec<String>,
    pub device_requests: usize,
    pub device_cgroup_rules: usize,
    /// The engine networks it is attached to (`NetworkSettings.Networks`), by name.
    pub networks: Vec<String>,
}

/// `Config.Env` as the engine holds it. It may hold a secret someone configured by hand:
/// [`std::fmt::Debug`] prints the names, never a value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConfiguredEnv(pub Vec<String>);

impl std::fmt::Debug for ConfiguredEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|kv| kv.split('=').next().unwrap_or("")))
            .finish()
    }
}

/// The run state of a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead` (empty if
    /// the engine did not say).
    pub status: String,
    pub running: bool,
    /// The host pid of its init while running.
    pub pid: Option<i64>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// RFC 3339 as the engine writes it; the zero time for never.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub health: Option<Health>,
}

/// The engine's own healthcheck.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// `none`, `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// The output of the last check, if any.
    pub last_output: Option<String>,
}

impl Health {
    pub fn unhealthy(&self) -> bool {
        self.status == HealthStatusEnum::UNHEALTHY.to_string()
    }
}

/// One mount as the engine holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, ... (empty when the engine leaves it out: a bind).
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// `rprivate`, `shared`, ... (empty when not reported).
    pub propagation: String,
}

impl Mount {
    pub fn is_bind(&self) -> bool {
        self.kind.is_empty() || self.kind == "bind"
    }
    pub fn is_tmpfs(&self) -> bool {
        self.kind == "tmpfs"
    }
}

impl Container {
    pub fn is_running(&self) -> bool {
        self.state.running
    }

    /// The view of an inspected container. `read_profile` reads a seccomp profile the engine
    /// holds by path (Podman), bounded.
    pub fn from_inspect(
        i: &ContainerInspectResponse,
        read_profile: impl Fn(&str) -> std::io::Result<String>,
    ) -> Container {
        let hc = i.host_config.clone().unwrap_or_default();
        let cfg = i.config.clone().unwrap_or_default();
        let st = i.state.clone().unwrap_or_default();
        let health = st.health.as_ref().map(|h| Health {
            status: h.status.map(|s| s.to_string()).unwrap_or_default(),
            last_output: h
                .log
                .as_ref()
                .and_then(|l| l.last())
                .and_then(|r| r.output.clone()),
        });
        let mut command: Vec<String> = i.path.clone().into_iter().collect();
        command.extend(i.args.clone().unwrap_or_default());
        Container {
            id: i.id.clone().unwrap_or_default(),
            name: i
                .name
                .as_deref()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string(),
            image: cfg.image.clone().unwrap_or_default(),
            labels: cfg.labels.clone().unwrap_or_default().into_iter().collect(),
            state: RunState {
                status: st.status.map(|s| s.to_string()).unwrap_or_default(),
                running: st.running.unwrap_or(false),
                pid: st.pid.filter(|p| *p > 0),
                exit_code: st.exit_code,
                oom_killed: st.oom_killed.unwrap_or(false),
                started_at: st.started_at.clone(),
                finished_at: st.finished_at.clone(),
                health,
            },
            resources: Resources {
                memory: hc.memory,
                memory_swap: hc.memory_swap,
                nano_cpus: hc.nano_cpus,
                pids_limit: hc.pids_limit,
            },
            cpu_quota: hc.cpu_quota,
            restart_count: i.restart_count.unwrap_or(0),
            mounts: i
                .mounts
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|m| Mount {
                    kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
                    source: m.source.unwrap_or_default(),
                    destination: m.destination.unwrap_or_default(),
                    read_only: m.rw != Some(true),
                    propagation: m.propagation.unwrap_or_default(),
                })
                .collect(),
            tmpfs: hc.tmpfs.clone().unwrap_or_default().into_iter().collect(),
            security: SecurityView::from_inspect(i, read_profile),
            security_opt: hc.security_opt.clone().unwrap_or_default(),
            apparmor_profile: i.app_armor_profile.clone().unwrap_or_default(),
            command,
            env: ConfiguredEnv(cfg.env.clone().unwrap_or_default()),
            devices: hc
                .devices
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.path_on_host.unwrap_or_default())
                .collect(),
            device_requests: hc.device_requests.as_ref().map_or(0, Vec::len),
            device_cgroup_rules: hc.device_cgroup_rules.as_ref().map_or(0, Vec::len),
            networks: i
                .network_settings
                .as_ref()
                .and_then(|n| n.networks.as_ref())
                .map(|n| n.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerConfig, ContainerState, ContainerStateStatusEnum, HostConfig, MountPoint,
    };

    #[test]
    fn the_view_normalises_names_limits_state_and_mounts_once() {
        let i = ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/sbx".into()),
            path: Some("sleep".into()),
            args: Some(vec!["1d".into()]),
            restart_count: Some(2),
            config: Some(ContainerConfig {
                image: Some("img".into()),
                labels: Some([("k".to_string(), "v".to_string())].into()),
                ..Default::default()
            }),
            state: Some(ContainerState {
                status: Some(ContainerStateStatusEnum::RUNNING),
                running: Some(true),
                pid: Some(42),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                memory: Some(64 << 20),
                pids_limit: Some(40),
                tmpfs: Some([("/tmp".to_string(), "size=1m".to_string())].into()),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("bind".into()),
                    source: Some("/h/ws".into()),
                    destination: Some("/ws".into()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    source: Some("/h/ro".into()),
                    destination: Some("/ro".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let c = Container::from_inspect(&i, |_| unreachable!("no profile path"));
        assert_eq!((c.id.as_str(), c.name.as_str()), ("abc", "sbx"));
        assert_eq!(c.command, ["sleep", "1d"]);
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(
            (c.state.status.as_str(), c.state.running, c.state.pid),
            ("running", true, Some(42))
        );
        assert_eq!(c.resources.memory, Some(64 << 20));
        assert_eq!(c.restart_count, 2);
        assert_eq!(c.tmpfs.get("/tmp").map(String::as_str), Some("size=1m"));
        assert!(c.mounts[0].is_bind() && !c.mounts[0].read_only);
        assert!(
            c.mounts[1].is_bind() && c.mounts[1].read_only,
            "rw unset is ro"
        );
    }

    #[test]
    fn seccomp_unconfined_is_read_in_either_spelling() {
        for opt in ["seccomp=unconfined", "seccomp:unconfined"] {
            let i = ContainerInspectResponse {
                host_config: Some(HostConfig {
                    security_opt: Some(vec!["no-new-privileges:true".into(), opt.into()]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let c = Container::from_inspect(&i, |_| unreachable!("not a path"));
            assert_eq!(c.security.seccomp.as_deref(), Some("unconfined"), "{opt}");
            assert!(c.security.no_new_privileges, "{opt}");
        }
    }

    #[test]
    fn the_configured_env_debugs_names_only() {
        let env = ConfiguredEnv(vec!["API_KEY=sk-secret".into(), "PATH=/bin".into()]);
        let shown = format!("{env:?}");
        assert_eq!(shown, r#"["API_KEY", "PATH"]"#);
    }
}
