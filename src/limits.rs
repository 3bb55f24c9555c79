//! The open-file limit: raised within what the system allows, and checked
//! before the service starts, so that a low `ulimit -n` is one clear error
//! instead of a runtime that cannot start or a listener that cannot bind.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::error::{Error, FD_FIX};

/// Descriptors a running service needs at the least: its runtime, its
/// sockets and files, and room for a rebind and some control connections.
const NEEDED: u64 = 64;

/// What the soft limit is raised to (as far as the hard limit allows):
/// plenty, without taking the whole hard limit.
const WANTED: u64 = 4096;

/// Raises the soft open-file limit towards [`WANTED`] (never lowering it),
/// and refuses to go on with fewer than [`NEEDED`] descriptors.
pub(crate) fn ensure_open_files() -> Result<(), Error> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| Error::Internal(format!("cannot read the open-file limit: {e}")))?;
    let raised = WANTED.min(hard);
    let soft = if raised > soft && setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() {
        raised
    } else {
        soft
    };
    if soft < NEEDED {
        return Err(Error::Resources(format!(
            "the open-file limit is {soft} (hard limit {hard}); discoveryd needs at least {NEEDED}: {FD_FIX}"
        )));
    }
    Ok(())
}
