//! The control channel: a Unix socket next to the pidfile, mode 0600, that
//! answers every connection with one JSON status document. Nothing listens
//! on the network for this.

use std::io::{self, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::status::Status;

/// The control socket of the instance whose pidfile is `pidfile`:
/// `discoveryd.pid` → `discoveryd.sock` (see [`crate::config::beside_pidfile`]).
pub(crate) fn socket_path(pidfile: &Path) -> PathBuf {
    crate::config::beside_pidfile(pidfile, "sock")
}

/// A bound control socket; its file is removed when dropped.
#[derive(Debug)]
pub(crate) struct ControlSocket {
    path: PathBuf,
    listener: Option<UnixListener>,
}

impl ControlSocket {
    /// Binds the socket, replacing a stale file. Call it only while holding
    /// the pidfile, which makes any file there stale.
    pub(crate) fn bind(path: &Path) -> io::Result<Self> {
        super::files::remove_socket(path)?;
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            path: path.to_owned(),
            listener: Some(listener),
        })
    }

    /// Hands the listener over to whoever serves it.
    pub(crate) fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long a status query waits for its answer.
const QUERY_WAIT: Duration = Duration::from_secs(3);

/// Asks the instance behind `path` for its status.
pub(crate) fn query(path: &Path) -> io::Result<Status> {
    query_within(path, QUERY_WAIT)
}

/// As [`query`], waiting at most `wait` for the answer.
pub(crate) fn query_within(path: &Path, wait: Duration) -> io::Result<Status> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    serde_json::from_str(&text).map_err(io::Error::other)
}
