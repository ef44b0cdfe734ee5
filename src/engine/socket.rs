//! Which engine socket to talk to (cli.md `--engine`, manifest.md `engine.socket`).
//!
//! Pure: the caller passes the environment and an existence check, so the order is unit-tested.

use std::path::{Path, PathBuf};

/// Where the chosen socket came from, for messages ("tried unix:///… from DOCKER_HOST").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Manifest,
    DockerHost,
    PodmanRootless,
    PodmanRootful,
    Default,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Flag => "--engine",
            Origin::Manifest => "engine.socket",
            Origin::DockerHost => "DOCKER_HOST",
            Origin::PodmanRootless => "the rootless Podman socket",
            Origin::PodmanRootful => "the rootful Podman socket",
            Origin::Default => "the default Docker socket",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub url: String,
    pub origin: Origin,
}

/// Inputs of the resolution, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct Inputs<'a> {
    pub flag: Option<&'a str>,
    pub manifest: Option<&'a str>,
    pub docker_host: Option<&'a str>,
    pub xdg_runtime_dir: Option<&'a Path>,
}

/// File names of engine API sockets (Docker, Podman, containerd, CRI-O, cri-dockerd,
/// BuildKit, dockershim): one list for validation, verify and doctor.
pub const ENGINE_SOCKET_NAMES: [&str; 7] = [
    "docker.sock",
    "podman.sock",
    "containerd.sock",
    "crio.sock",
    "cri-dockerd.sock",
    "buildkitd.sock",
    "dockershim.sock",
];

pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
pub const ROOTFUL_PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// `--engine`, then `engine.socket`, then `$DOCKER_HOST`, then a Podman socket that exists
/// (rootless first: it is the current user's own engine), then `/var/run/docker.sock`.
pub fn resolve(inputs: &Inputs<'_>, exists: impl Fn(&Path) -> bool) -> Resolved {
    let explicit = [
        (inputs.flag, Origin::Flag),
        (inputs.manifest, Origin::Manifest),
        (inputs.docker_host, Origin::DockerHost),
    ];
    for (value, origin) in explicit {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            return Resolved {
                url: normalise(v),
                origin,
            };
        }
    }
    let rootless: Option<PathBuf> = inputs
        .xdg_runtime_dir
        .map(|d| d.join("podman").join("podman.sock"));
    let candidates = rootless
        .map(|p| (p, Origin::PodmanRootless))
        .into_iter()
        .chain([(PathBuf::from(ROOTFUL_PODMAN_SOCKET), Origin::PodmanRootful)]);
    for (path, origin) in candidates {
        if exists(&path) {
            return Resolved {
                url: format!("unix://{}", path.display()),
                origin,
            };
        }
    }
    Resolved {
        url: format!("unix://{DEFAULT_DOCKER_SOCKET}"),
        origin: Origin::Default,
    }
}

/// A bare path is a unix socket.
fn normalise(v: &str) -> String {
    let v = v.trim();
    if v.starts_with('/') {
        format!("unix://{v}")
    } else {
        v.to_string()
    }
}

/// Resolution from this process's environment.
pub fn resolve_from_env(flag: Option<&str>, manifest: Option<&str>) -> Resolved {
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    resolve(
        &Inputs {
            flag,
            manifest,
            docker_host: docker_host.as_deref(),
            xdg_runtime_dir: xdg.as_deref(),
        },
        |p| p.exists(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_follows_the_documented_order() {
        let xdg = PathBuf::from("/run/user/1000");
        let all = Inputs {
            flag: Some("unix:///flag.sock"),
            manifest: Some("unix:///manifest.sock"),
            docker_host: Some("tcp://127.0.0.1:2375"),
            xdg_runtime_dir: Some(&xdg),
        };
        let yes = |_: &Path| true;
        let no = |_: &Path| false;
        assert_eq!(resolve(&all, yes).origin, Origin::Flag);
        let no_flag = Inputs {
            flag: None,
            ..all.clone()
        };
        assert_eq!(resolve(&no_flag, yes).url, "unix:///manifest.sock");
        let env_only = Inputs {
            manifest: None,
            ..no_flag.clone()
        };
        assert_eq!(resolve(&env_only, yes).url, "tcp://127.0.0.1:2375");
        let podman = Inputs {
            docker_host: None,
            ..env_only.clone()
        };
        assert_eq!(
            resolve(&podman, yes).url,
            "unix:///run/user/1000/podman/podman.sock"
        );
        let rootful = |p: &Path| p == Path::new(ROOTFUL_PODMAN_SOCKET);
        assert_eq!(resolve(&podman, rootful).origin, Origin::PodmanRootful);
        assert_eq!(
            resolve(&podman, no),
            Resolved {
                url: "unix:///var/run/docker.sock".into(),
                origin: Origin::Default
            }
        );
    }

    #[test]
    fn a_bare_path_is_a_unix_socket() {
        let i = Inputs {
            flag: Some("/tmp/x.sock"),
            ..Default::default()
        };
        assert_eq!(resolve(&i, |_| false).url, "unix:///tmp/x.sock");
    }
}
