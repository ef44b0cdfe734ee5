//! Log lines for the journal: each starts with its sd-daemon priority (`<3>` error, `<4>`
//! warning, `<6>` info, `<7>` debug and trace), which journald strips and stores as the entry's
//! priority, so `journalctl -p warning` selects by level. The rest is the usual text line,
//! without the time (journald stamps it).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The sd-daemon priority of a level (sd-daemon(3)).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The text format with the priority prefix.
pub struct Journald {
    inner: Format<Full, ()>,
}

impl Default for Journald {
    fn default() -> Self {
        Journald {
            inner: Format::default()
                .with_target(false)
                .with_ansi(false)
                .without_time(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::priority;
    use tracing::Level;

    #[test]
    fn levels_map_to_sd_daemon_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }
}
