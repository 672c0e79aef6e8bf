//! Forwards the plugin's `tracing` events to the host's log, so a process has one log with
//! one filter (`--log-level`, `STRATA_LOG`), whichever plugin emits.
//!
//! A deliberately small subscriber: events become one line (`message key=value ...`) at the
//! event's level and target; spans are accepted but not recorded.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};

/// The subscriber [`crate::export_plugin!`] installs as the plugin's global default.
#[derive(Debug, Default)]
pub struct HostSubscriber {
    next_span: AtomicU64,
}

pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(
            HostSubscriber::default(),
        ));
    });
}

fn level_number(l: &Level) -> u32 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for HostSubscriber {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        // The host filters; asking it per callsite would cost a call per event.
        crate::host::current().is_some()
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(host) = crate::host::current() else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let meta = event.metadata();
        host.log(
            level_number(meta.level()),
            meta.target(),
            &format!("{}{}", line.message, line.fields),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
