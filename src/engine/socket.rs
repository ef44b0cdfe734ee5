//! Which engine socket to talk to.
