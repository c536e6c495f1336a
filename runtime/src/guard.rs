//! Device failures as errors. Burn's GPU runtimes report a lost device (a driver reset, an
//! out-of-memory kernel launch) by panicking, often in a device thread, which would end the
//! process with a panic message and exit status 101. [`guarded`] runs work under
//! `catch_unwind` and turns such a panic into a [`DeviceFailure`] error carrying the first panic
//! message of any thread; [`install_panic_hook`] keeps those messages off the terminal while
//! guarded work runs, so the user sees one error instead of a backtrace note.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Guarded sections running now, in any thread.
static GUARDED: AtomicUsize = AtomicUsize::new(0);
/// Panic messages caught while guarded, oldest first.
static CAUGHT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Work that stopped because the backend panicked: on a GPU, a lost or failing device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFailure {
    /// What was running, e.g. `step 12 on cuda:0`.
    pub during: String,
    /// The first panic message, naming the thread that raised it.
    pub cause: String,
}

impl fmt::Display for DeviceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stopped: the backend failed ({}); a GPU driver reset or a device out of memory ends work this way",
            self.during, self.cause
        )
    }
}

impl std::error::Error for DeviceFailure {}

/// The message of a panic's payload (`panic!` with a literal or a formatted string); `None`
/// for any other payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

/// Makes panics raised while [`guarded`] work runs quiet: their message is kept for the
/// error instead of printed. Other panics print as before. Call once, at start-up.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if GUARDED.load(Ordering::SeqCst) == 0 {
            return default(info);
        }
        let message = panic_message(info.payload()).unwrap_or_else(|| "unknown panic".into());
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut caught) = CAUGHT.lock() {
            caught.push(format!("{message} (thread `{name}`{at})"));
        }
    }));
}

/// Runs `work`; a panic inside it becomes a [`DeviceFailure`] for `during` (e.g. `step 12`).
pub fn guarded<T>(
    during: impl FnOnce() -> String,
    work: impl FnOnce() -> T,
) -> Result<T, DeviceFailure> {
    if let Ok(mut caught) = CAUGHT.lock() {
        caught.clear();
    }
    GUARDED.fetch_add(1, Ordering::SeqCst);
    let outcome = catch_unwind(AssertUnwindSafe(work));
    GUARDED.fetch_sub(1, Ordering::SeqCst);
    outcome.map_err(|payload| {
        let first = CAUGHT.lock().ok().and_then(|mut c| {
            let first = c.first().cloned();
            c.clear();
            first
        });
        let cause = first
            .or_else(|| panic_message(&*payload))
            .unwrap_or_else(|| "unknown panic".into());
        DeviceFailure {
            during: during(),
            cause,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_work_and_the_cause() {
        install_panic_hook();
        let err = guarded(|| "step 3".into(), || -> u32 { panic!("device lost") }).unwrap_err();
        assert_eq!(err.during, "step 3");
        assert!(
            err.cause.starts_with("device lost (thread"),
            "{}",
            err.cause
        );
        assert!(err.to_string().starts_with("step 3 stopped"));
        assert_eq!(guarded(|| unreachable!(), || 7), Ok(7));
    }

    #[test]
    fn panic_messages_come_from_str_and_string_payloads_only() {
        let literal: Box<dyn Any + Send> = Box::new("lost");
        let formatted: Box<dyn Any + Send> = Box::new(format!("lost {}", 2));
        let other: Box<dyn Any + Send> = Box::new(42u32);
        assert_eq!(panic_message(&*literal).as_deref(), Some("lost"));
        assert_eq!(panic_message(&*formatted).as_deref(), Some("lost 2"));
        assert_eq!(panic_message(&*other), None);
    }
}
