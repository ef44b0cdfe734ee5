//! Egress allow-list: which destinations a sandbox may reach, and the HTTP proxy that enforces
//! it. `policy` decides (pure); `proxy` serves and acts on the decision.
//!
//! This module must not touch the engine or the host's firewall: attaching sandboxes to an
//! internal network and isolating the proxy's listening address are the engine's and the
//! daemon's work.

pub mod broker;
pub mod netns;
pub mod policy;
pub mod proxy;

pub use policy::{decide, parse_allow_entry, Decision, DenyReason, Dest, EgressPolicy};
