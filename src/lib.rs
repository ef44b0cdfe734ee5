//! clw-fortress: hardens, enforces, heals, backs up and verifies the sandbox containers AI
//! agents run their tools in. The binary (`main.rs`) is a thin shell over this library.

pub mod engine;
pub mod error;
pub mod manifest;
pub mod seccomp;
pub mod secrets;
