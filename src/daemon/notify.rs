//! Readiness and state notifications: the systemd notify protocol when
//! `NOTIFY_SOCKET` is set, and the readiness pipe `discoveryd start` waits
//! on. Both are told the same events by the supervisor.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::sync::Mutex;
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

use crate::error::Error;

/// The shortest pause between two watchdog pings.
pub(crate) const MIN_WATCHDOG_PING: Duration = Duration::from_millis(100);

/// Where systemd listens.
#[derive(Debug)]
struct Systemd {
    socket: UnixDatagram,
    addr: UnixAddr,
}

/// Sends lifecycle notifications to whoever waits for them.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    systemd: Option<Systemd>,
    watchdog: Option<Duration>,
    start_pipe: Mutex<Option<File>>,
}

impl Notifier {
    /// A notifier for systemd, configured from `NOTIFY_SOCKET`,
    /// `WATCHDOG_USEC` and `WATCHDOG_PID`; silent when they are unset.
    pub(crate) fn from_env() -> Self {
        let systemd = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let addr = match path.strip_prefix('@') {
                Some(name) => UnixAddr::from_abstract_name(name.as_bytes()).ok()?,
                None => UnixAddr::from_pathname(&path).ok()?,
            };
            // Non-blocking: a manager that stops reading (a full queue)
            // must never stall the supervisor; a lost notification is the
            // lesser harm, as with sd_notify.
            let socket = UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(Systemd { socket, addr })
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|pid| pid.parse() == Ok(std::process::id()));
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(Duration::from_micros);
        Self {
            systemd,
            watchdog,
            start_pipe: Mutex::new(None),
        }
    }

    /// Also reports readiness (or failure) on `pipe`, once.
    pub(crate) fn with_start_pipe(self, pipe: File) -> Self {
        Self {
            start_pipe: Mutex::new(Some(pipe)),
            ..self
        }
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, but never
    /// more often than every [`MIN_WATCHDOG_PING`] (a tiny value would
    /// otherwise keep a CPU busy pinging).
    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| (d / 2).max(MIN_WATCHDOG_PING))
    }

    /// True when `WATCHDOG_USEC` asks for pings more often than
    /// [`MIN_WATCHDOG_PING`] allows.
    pub(crate) fn watchdog_clamped(&self) -> bool {
        self.watchdog.is_some_and(|d| d / 2 < MIN_WATCHDOG_PING)
    }

    /// The service answers on `addrs`.
    pub(crate) fn ready(&self, addrs: &[SocketAddr]) {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        self.systemd(&format!(
            "READY=1\nSTATUS=listening on {}\nMAINPID={}",
            list.join(", "),
            std::process::id()
        ));
        self.pipe(&format!("READY {}\n", std::process::id()));
    }

    /// A reload starts.
    pub(crate) fn reloading(&self) {
        let usec = clock_gettime(ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
            .unwrap_or(0);
        self.systemd(&format!(
            "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration"
        ));
    }

    /// A reload ended (applied or rejected); `status` says which.
    pub(crate) fn reloaded(&self, status: &str) {
        self.systemd(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// The service is stopping.
    pub(crate) fn stopping(&self) {
        self.systemd("STOPPING=1\nSTATUS=stopping");
    }

    /// The service is alive.
    pub(crate) fn watchdog(&self) {
        self.systemd("WATCHDOG=1");
    }

    /// The service failed before it was ready: tells `start` why.
    pub(crate) fn failed(&self, error: &Error) {
        self.systemd(&format!("STATUS={}", one_line(&error.to_string())));
        self.pipe(&format!("ERROR {}\n{error}\n", error.exit_code()));
    }

    fn systemd(&self, message: &str) {
        if let Some(s) = &self.systemd {
            // Best effort, as sd_notify: systemd may not be listening.
            let _ = s.socket.send_to_addr(message.as_bytes(), &s.addr);
        }
    }

    fn pipe(&self, message: &str) {
        let taken = self.start_pipe.lock().map(|mut p| p.take());
        if let Ok(Some(mut pipe)) = taken {
            // `start` may have gone; the daemon carries on regardless.
            let _ = pipe.write_all(message.as_bytes());
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', "; ")
}
