//! Graceful shutdown of `safeaware serve`: SIGTERM (what `docker stop`, Kubernetes and systemd
//! send) or SIGINT (Ctrl-C) sets a flag; the HTTP workers then answer new requests with 503 and
//! stop, and the model thread finishes the requests already accepted within the grace period
//! (`--shutdown-grace`), failing what is left with 503. A second signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

/// Set by the first SIGTERM/SIGINT.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Exit status of a second signal: 128 + SIGINT, as a shell reports an interrupted command.
const FORCED_EXIT: i32 = 130;

extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and `_exit` on a second signal.
    if REQUESTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe and takes no pointers.
        unsafe { libc::_exit(FORCED_EXIT) };
    }
}

/// Installs the SIGTERM and SIGINT handlers.
pub fn install() -> Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only touches an atomic and calls `_exit`, both signal-safe.
        if unsafe { libc::signal(signal, handler) } == libc::SIG_ERR {
            bail!("cannot install the handler of signal {signal}");
        }
    }
    Ok(())
}

/// Whether a shutdown was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
