//! The bollard-backed [`Engine`](super::Engine) for Docker and Podman's Docker-compatible API.

/// A connected engine.
pub struct DockerEngine;
