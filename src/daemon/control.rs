//! The control channel: a Unix socket next to the pidfile, mode 0600, that
//! answers every connection with one JSON status document. Nothing listens
//! on the network for this.

use std::io::{self, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// The longest status document believed: far above a real one (a few
/// KiB), far below anything that could hurt the asker.
const MAX_ANSWER: u64 = 1 << 20;

/// Asks the instance behind `path` for its status.
pub(crate) fn query(path: &Path) -> io::Result<Status> {
    query_within(path, QUERY_WAIT)
}

/// As [`query`], waiting at most `wait` in all for the whole answer, and
/// reading at most [`MAX_ANSWER`] bytes of it: whatever answers on the
/// socket cannot hold the asker.
pub(crate) fn query_within(path: &Path, wait: Duration) -> io::Result<Status> {
    let deadline = crate::duration::deadline(wait.max(Duration::from_millis(1)));
    let stream = UnixStream::connect(path)?;
    let mut answer = Vec::new();
    let mut limited = (&stream).take(MAX_ANSWER + 1);
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The read timeout: the deadline has passed.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::ErrorKind::TimedOut.into())
            }
            Err(e) => return Err(e),
        }
    }
    if answer.len() as u64 > MAX_ANSWER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "its answer is longer than any status document",
        ));
    }
    serde_json::from_slice(&answer).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A fake instance on a control socket, answering `answer` forever (or
    /// until the asker leaves) in chunks of `chunk` bytes, `every` apart.
    fn fake(dir: &Path, chunk: usize, every: Duration) -> PathBuf {
        let path = dir.join("fake.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let bytes = vec![b' '; chunk];
            while stream.write_all(&bytes).is_ok() {
                std::thread::sleep(every);
            }
        });
        path
    }

    #[test]
    fn a_trickling_answer_cannot_hold_the_asker() {
        let dir = tempfile::tempdir().unwrap();
        let path = fake(dir.path(), 1, Duration::from_millis(20));
        let started = Instant::now();
        let e = query_within(&path, Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_endless_answer_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = fake(dir.path(), 1 << 16, Duration::ZERO);
        let e = query_within(&path, Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }
}
