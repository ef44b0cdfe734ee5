//! systemd's notify protocol: readiness, watchdog pings, status lines. Every call is a no-op
//! without `NOTIFY_SOCKET` (the daemon run by hand, or by the tests), and a failure to notify
//! is logged, never fatal: the agent's job is enforcement, not talking to systemd.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("cannot notify systemd: {e}");
    }
}

/// `READY=1` with a status line: the first sweep is done and events are being watched.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::Status("reloading the manifest"),
    ]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping, given `WATCHDOG_USEC`: half of it, as sd_watchdog_enabled(3) advises,
/// so one late ping does not get the agent killed.
pub fn ping_interval(watchdog: Duration) -> Duration {
    (watchdog / 2).max(Duration::from_millis(1))
}

/// The ping interval when systemd runs a watchdog for this process, else `None`.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(ping_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout() {
        assert_eq!(
            ping_interval(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(ping_interval(Duration::ZERO), Duration::from_millis(1));
    }
}
