//! clw-fortress: hardens, enforces, heals, backs up and verifies the sandbox containers AI
//! agents run their tools in. The binary (`main.rs`) is a thin shell over this library.

pub mod apply;
pub mod backup;
pub mod broker;
pub mod cgroup;
pub mod cli;
pub mod daemon;
pub mod doctor;
pub mod egress;
pub mod enforce;
pub mod engine;
pub mod error;
pub mod exec;
pub mod heal;
pub mod host;
pub mod input;
pub mod limits;
pub mod manifest;
pub mod openclaw;
pub mod ownership;
pub mod pin;
pub mod plan;
pub mod report;
pub mod seccomp;
pub mod secrets;
pub mod spec;
pub mod state;
pub mod status;
pub mod verify;
