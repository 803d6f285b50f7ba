//! The `log` crate's records into Envoy's log (`[dynamic_modules]`), and the panic hook that
//! keeps a panic's message for the one line its entry logs (`crate::entry`).

use crate::abi;
use std::cell::RefCell;

struct EnvoyLogger;

static LOGGER: EnvoyLogger = EnvoyLogger;

impl log::Log for EnvoyLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => 0,
            log::Level::Debug => 1,
            log::Level::Info => 2,
            log::Level::Warn => 3,
            log::Level::Error => 4,
        };
        let message = format!("traffic-split: {}", record.args());
        // SAFETY: Envoy only reads the message, within the call.
        unsafe {
            abi::envoy_dynamic_module_callback_log(level, abi::ModuleBuffer::of(message.as_bytes()))
        };
    }

    fn flush(&self) {}
}

/// Logs at Envoy's `critical` level, which Envoy writes to its log file at once (it flushes
/// lower levels every few seconds): for a refused configuration, which the operator is
/// looking for in the log right after the push.
pub fn critical(message: &str) {
    let message = format!("traffic-split: {message}");
    // SAFETY: Envoy only reads the message, within the call.
    unsafe {
        abi::envoy_dynamic_module_callback_log(CRITICAL, abi::ModuleBuffer::of(message.as_bytes()))
    };
}

/// `envoy_dynamic_module_type_log_level_Critical`.
const CRITICAL: abi::LogLevel = 5;

thread_local! {
    /// The message of the last panic on this thread, for the entry that caught it.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sends `log` records to Envoy (at info and above until a config says otherwise), and keeps
/// panic messages instead of printing them to stderr.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|at| format!(" at {}:{}", at.file(), at.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let _ = LAST_PANIC.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some(format!("{payload}{location}"));
            }
        });
    }));
}

/// The message of the panic just caught on this thread.
pub fn take_panic_message() -> String {
    LAST_PANIC
        .try_with(|last| last.try_borrow_mut().ok().and_then(|mut last| last.take()))
        .ok()
        .flatten()
        .unwrap_or_else(|| "(no message)".to_string())
}
