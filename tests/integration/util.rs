//! Helpers: run the real binary, read what it prints, query it over
//! loopback. Every wait polls against a deadline; nothing sleeps blindly.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long any single expectation may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Samples until `done` holds or the deadline passes; returns the last
/// sample, for the caller to assert on. For what settles a moment after
/// the event a test saw: a worker counts a request just after it sends the
/// answer, so a status taken as the answer arrives may not count it yet.
pub(crate) fn settled<T>(mut sample: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = sample();
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_discoveryd")
}

/// A temporary directory holding a config file.
pub(crate) struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    pub(crate) fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let this = Self { dir };
        this.write(toml);
        this
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("discoveryd.toml")
    }

    /// Writes the whole config at once: a temporary file in the same
    /// directory, renamed over it. A daemon watching the file never reads
    /// it half-written (its debounce can fire between a truncate and the
    /// write that follows it).
    pub(crate) fn write(&self, toml: &str) {
        write_whole(&self.path(), toml);
    }

    /// Truncates the config and writes it, as many editors do; a watching
    /// daemon may read it empty in between. Only for tests where writing in
    /// place is the point; everything else uses [`write`](Self::write).
    pub(crate) fn write_in_place(&self, toml: &str) {
        std::fs::write(self.path(), toml).expect("write config in place");
    }
}

/// Replaces `path` with `text` in one step: a temporary file beside it,
/// renamed over it (see [`ConfigDir::write`]).
pub(crate) fn write_whole(path: &Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).expect("write temp config");
    std::fs::rename(&tmp, path).expect("rename config");
}

/// Lines a child printed on one stream, as they arrive.
struct Lines {
    all: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
}

impl Lines {
    fn spawn(stream: impl std::io::Read + Send + 'static) -> Self {
        let all = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&all);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self { all, rx }
    }

    /// The next line containing `needle`, skipping the others.
    fn wait_for(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn text(&self) -> String {
        self.all.lock().unwrap().join("\n")
    }

    /// Everything, once the stream has closed (the child exited and no
    /// other process holds it); panics past `within`.
    fn until_closed(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("the stream stayed open for {within:?}"));
            match self.rx.recv_timeout(left) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => return self.text(),
                Err(RecvTimeoutError::Timeout) => panic!("the stream stayed open for {within:?}"),
            }
        }
    }
}

/// A `discoveryd` process, killed when dropped; its output is printed if
/// the test fails.
pub(crate) struct Daemon {
    child: Child,
    /// Holds this daemon's pidfile and control socket (removed on drop).
    _state: tempfile::TempDir,
    stdout: Lines,
    stderr: Lines,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Spawns `discoveryd <args>`, bound to loopback unless the args or the
    /// config say otherwise.
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[("DISCOVERYD_BIND", "127.0.0.1")])
    }

    /// As [`spawn`](Self::spawn), with these environment variables, and a
    /// pidfile of its own unless `env` names one.
    pub(crate) fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_inner(args, env, false)
    }

    /// As [`spawn_with_env`](Self::spawn_with_env), with stderr a pipe of
    /// the test's own and `JOURNAL_STREAM` set as systemd sets it for a
    /// service: to that pipe's `<device>:<inode>` when `matching`, else to
    /// another inode on the same device (stderr is not the journal's).
    pub(crate) fn spawn_with_journal_stream(
        args: &[&str],
        env: &[(&str, &str)],
        matching: bool,
    ) -> Self {
        use nix::fcntl::OFlag;
        // Close-on-exec: no other test's child may hold the write end open.
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let stat = nix::sys::stat::fstat(&write).expect("fstat the pipe");
        let ino = if matching {
            stat.st_ino
        } else {
            stat.st_ino + 1
        };
        let stream = format!("{}:{ino}", stat.st_dev);
        let mut env = env.to_vec();
        env.push(("JOURNAL_STREAM", &stream));
        Self::spawn_stderr(
            args,
            &env,
            false,
            Stdio::from(write),
            Box::new(std::fs::File::from(read)),
        )
    }

    fn spawn_inner(args: &[&str], env: &[(&str, &str)], close_stdout: bool) -> Self {
        Self::spawn_stderr(
            args,
            env,
            close_stdout,
            Stdio::piped(),
            Box::new(std::io::empty()),
        )
    }

    /// Spawns with `stderr`; when that is not a pipe to this process,
    /// `reader` is the other end to read it from.
    fn spawn_stderr(
        args: &[&str],
        env: &[(&str, &str)],
        close_stdout: bool,
        stderr: Stdio,
        reader: Box<dyn std::io::Read + Send>,
    ) -> Self {
        let state = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(bin());
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        command.env("DISCOVERYD_PIDFILE", state.path().join("discoveryd.pid"));
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn discoveryd");
        // Our copy of a given stderr closes here, so the reader sees the
        // end when the child exits.
        drop(command);
        let stdout = child.stdout.take().unwrap();
        let stdout = if close_stdout {
            drop(stdout);
            Lines::spawn(std::io::empty())
        } else {
            Lines::spawn(stdout)
        };
        let stderr = match child.stderr.take() {
            Some(piped) => Lines::spawn(piped),
            None => Lines::spawn(reader),
        };
        Self {
            child,
            _state: state,
            stdout,
            stderr,
            status: None,
        }
    }

    /// `run --port 0` with this config file; waits until it listens and
    /// returns the port the kernel gave it. The flag outranks the file's
    /// `port` and stays in force across reloads (the port first bound is
    /// kept), so the file's `port`, if any, is never bound.
    pub(crate) fn run(config: &ConfigDir, extra: &[&str]) -> (Self, u16) {
        let mut args = vec!["--port", "0"];
        args.extend_from_slice(extra);
        Self::run_on_file_port(config, &args)
    }

    /// `run` with this config file, on the port the file names (from
    /// [`free_port`]): for tests where the port itself matters (it changes
    /// on a reload, or another program holds it). Waits until it listens.
    pub(crate) fn run_on_file_port(config: &ConfigDir, extra: &[&str]) -> (Self, u16) {
        let path = config.path();
        let mut args = vec!["run", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut daemon = Self::spawn(&args);
        let port = daemon.listening_port();
        (daemon, port)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pidfile this daemon was given.
    pub(crate) fn pidfile(&self) -> PathBuf {
        self._state.path().join("discoveryd.pid")
    }

    /// Spawns `discoveryd <args>` on loopback with its stdout closed
    /// before it writes anything, as `discoveryd run | head -0` does.
    pub(crate) fn spawn_with_stdout_closed(args: &[&str]) -> Self {
        Self::spawn_inner(args, &[("DISCOVERYD_BIND", "127.0.0.1")], true)
    }

    /// This daemon's status document (`discoveryd status --json`).
    pub(crate) fn status(&self) -> serde_json::Value {
        let pidfile = self._state.path().join("discoveryd.pid");
        let (code, out, err) =
            output_within(&["status", "--json", "--pidfile", pidfile.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).expect("status JSON")
    }

    /// Waits for the `[OK] ... listening on <addr>` line; returns the port.
    pub(crate) fn listening_port(&mut self) -> u16 {
        let line = self.expect_stdout("[OK] discovery service listening on ");
        let addr: SocketAddr = line
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .expect("listening address");
        addr.port()
    }

    pub(crate) fn expect_stdout(&mut self, needle: &str) -> String {
        match self.stdout.wait_for(needle, DEADLINE) {
            Some(line) => line,
            None => panic!("no stdout line with {needle:?} within {DEADLINE:?}"),
        }
    }

    pub(crate) fn expect_stderr(&mut self, needle: &str) -> String {
        match self.stderr.wait_for(needle, DEADLINE) {
            Some(line) => line,
            None => panic!("no stderr line with {needle:?} within {DEADLINE:?}"),
        }
    }

    pub(crate) fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Stops it with SIGTERM; returns its exit code and all it wrote on
    /// stderr, once stderr has closed.
    pub(crate) fn stop_and_collect_stderr(&mut self) -> (i32, String) {
        self.signal(Signal::SIGTERM);
        self.exit_and_collect_stderr()
    }

    /// Waits for it to exit; returns its exit code and all it wrote on
    /// stderr, once stderr has closed.
    pub(crate) fn exit_and_collect_stderr(&mut self) -> (i32, String) {
        let code = self.wait();
        (code, self.stderr.until_closed(DEADLINE))
    }

    pub(crate) fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("send signal");
    }

    /// Waits for the process to exit; returns its exit code.
    pub(crate) fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "discoveryd did not exit within {DEADLINE:?}"
            );
            // Waiting on a child has no timeout in std: poll it.
            std::thread::yield_now();
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- discoveryd stdout ---\n{}", self.stdout.text());
            eprintln!("--- discoveryd stderr ---\n{}", self.stderr.text());
        }
    }
}

/// Runs `discoveryd <args>`, failing the test if it has not ended within
/// the deadline (it is killed then): for commands that must not hang.
pub(crate) fn output_within(args: &[&str]) -> (i32, String, String) {
    output_within_env(args, &[])
}

/// As [`output_within`], with these environment variables.
pub(crate) fn output_within_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run discoveryd");
    let stdout = Lines::spawn(child.stdout.take().unwrap());
    let stderr = Lines::spawn(child.stderr.take().unwrap());
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("discoveryd {args:?} hung for {DEADLINE:?}");
        }
        std::thread::park_timeout(Duration::from_millis(5));
    };
    // The reader threads finish once the pipes close.
    let text = |lines: &Lines| {
        let until = Instant::now() + DEADLINE;
        while lines.rx.recv_timeout(Duration::from_millis(50)).is_ok() && Instant::now() < until {}
        lines.text()
    };
    (status.code().unwrap_or(-1), text(&stdout), text(&stderr))
}

/// Runs `discoveryd <args>` to completion: (exit code, stdout, stderr).
pub(crate) fn output(args: &[&str]) -> (i32, String, String) {
    output_with_env(args, &[])
}

/// As [`output`], with these environment variables (any bytes).
pub(crate) fn output_with_env(
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run discoveryd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A UDP client on loopback.
pub(crate) struct Client {
    socket: UdpSocket,
}

impl Client {
    pub(crate) fn new() -> Self {
        Self::bound_to("127.0.0.1")
    }

    pub(crate) fn bound_to(ip: &str) -> Self {
        let socket = UdpSocket::bind((ip, 0)).expect("client socket");
        Self { socket }
    }

    /// Sends `payload` to `ip:port` and returns the first answer within `wait`.
    pub(crate) fn ask_at(
        &self,
        ip: &str,
        port: u16,
        payload: &[u8],
        wait: Duration,
    ) -> Option<(String, SocketAddr)> {
        self.socket.send_to(payload, (ip, port)).expect("send");
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 65_536];
        match self.socket.recv_from(&mut buf) {
            Ok((n, from)) => Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from)),
            Err(_) => None,
        }
    }

    /// One request to 127.0.0.1:`port`; `None` when nothing came back in time.
    pub(crate) fn ask(&self, port: u16, payload: &[u8]) -> Option<String> {
        self.ask_at("127.0.0.1", port, payload, Duration::from_millis(300))
            .map(|(reply, _)| reply)
    }

    /// Asks until the answer is `expected` or the deadline passes.
    pub(crate) fn ask_until(&self, port: u16, payload: &[u8], expected: &str) -> Duration {
        let start = Instant::now();
        loop {
            let reply = self
                .ask_at("127.0.0.1", port, payload, Duration::from_millis(20))
                .map(|(r, _)| r);
            if reply.as_deref() == Some(expected) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "never answered {expected:?} (last: {reply:?})"
            );
            self.drain();
        }
    }

    /// Drops late answers to earlier requests.
    pub(crate) fn drain(&self) {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        while self.socket.recv_from(&mut buf).is_ok() {}
        self.socket.set_nonblocking(false).unwrap();
    }
}

/// A UDP port for a config file that must name one (a file cannot say
/// port 0): for `start` (which has no `--port`), for a port that changes
/// on a reload, and for a port another program holds. Everything else runs
/// with `--port 0` ([`Daemon::run`]) and reads the port the kernel gave.
///
/// Binding port 0 and handing the number on would race: once closed, the
/// kernel may give that same port to any test's `--port 0` or client
/// socket before the daemon binds it. So the port comes from below the
/// kernel's ephemeral range (`ip_local_port_range`), where nothing is
/// handed out unasked; each call in this process gets a different one (a
/// counter, from an offset derived from the pid so that two test processes
/// start apart); and it is free on 127.0.0.1, and on ::1 (some tests bind
/// both), when chosen.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    /// Below this, ports are well known (or the reflector ports the
    /// security tests bind).
    const FIRST: u16 = 20_000;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static PORTS: OnceLock<(Vec<u16>, usize)> = OnceLock::new();
    let (ports, offset) = PORTS.get_or_init(|| {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .expect("read /proc/sys/net/ipv4/ip_local_port_range");
        let bounds: Vec<u16> = range
            .split_whitespace()
            .map(|n| n.parse().expect("a port number"))
            .collect();
        let (low, high) = (bounds[0], bounds[1]);
        // Below the range if there is room there, else above it.
        let ports: Vec<u16> = if low > FIRST + 1000 {
            (FIRST..low).collect()
        } else {
            (high.saturating_add(1).max(FIRST)..=u16::MAX).collect()
        };
        assert!(
            ports.len() >= 1000,
            "the ephemeral port range {low}-{high} leaves too few ports outside it"
        );
        let offset = std::process::id() as usize * 7919 % ports.len();
        (ports, offset)
    });
    for _ in 0..ports.len() {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = ports[(offset + n) % ports.len()];
        let v4 = UdpSocket::bind(("127.0.0.1", port)).is_ok();
        // Without IPv6 on loopback, only IPv4 matters.
        let v6 = match UdpSocket::bind(("::1", port)) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::AddrInUse,
        };
        if v4 && v6 {
            return port;
        }
    }
    panic!("no free UDP port outside the ephemeral range");
}

/// A config file body bound to loopback, with no `port`: for `run --port
/// 0` ([`Daemon::run`]) and for commands that never bind.
pub(crate) fn loopback(extra: &str) -> String {
    format!("bind = \"127.0.0.1\"\n{extra}\n")
}

/// Binds `port` on loopback and holds it, as another process would.
pub(crate) fn hold(port: u16) -> UdpSocket {
    UdpSocket::bind(("127.0.0.1", port)).expect("hold port")
}

/// A config file body for `port` with the given extra lines.
pub(crate) fn config_for(port: u16, extra: &str) -> String {
    format!("port = {port}\nbind = \"127.0.0.1\"\n{extra}\n")
}

/// A background instance's files, stopped (if running) when dropped.
pub(crate) struct Background {
    pub(crate) config: ConfigDir,
    pub(crate) port: u16,
}

impl Background {
    pub(crate) fn new(extra: &str) -> Self {
        let port = free_port();
        Self {
            config: ConfigDir::new(&config_for(port, extra)),
            port,
        }
    }

    pub(crate) fn pidfile(&self) -> PathBuf {
        self.config.path().with_file_name("discoveryd.pid")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.config.path().with_file_name("discoveryd.log")
    }

    /// `discoveryd <command> --config C --pidfile P [args]`.
    pub(crate) fn cmd(&self, command: &str, args: &[&str]) -> (i32, String, String) {
        let (config, pidfile) = (self.config.path(), self.pidfile());
        let mut all = vec![
            command,
            "--config",
            config.to_str().unwrap(),
            "--pidfile",
            pidfile.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        output(&all)
    }

    pub(crate) fn start(&self) -> u32 {
        let (code, out, err) = self.cmd("start", &[]);
        assert_eq!(
            code,
            0,
            "start failed: {out}{err}\nlog:\n{}",
            self.log_text()
        );
        let pid: u32 = out
            .trim()
            .strip_prefix("started with pid ")
            .expect(&out)
            .parse()
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(self.pidfile()).unwrap().trim(),
            pid.to_string()
        );
        pid
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub(crate) fn expect_log(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }

    pub(crate) fn status_json(&self) -> serde_json::Value {
        let (code, out, err) = self.cmd("status", &["--json"]);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str(&out).expect("status JSON")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.cmd("stop", &["--timeout", "1s"]);
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}", self.log_text());
        }
    }
}

pub(crate) fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

/// Waits for `pid` to be gone (reaped by init, since the daemon is detached).
pub(crate) fn wait_gone(pid: u32) {
    let deadline = Instant::now() + DEADLINE;
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} still alive");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// Collects what the daemon sends to a NOTIFY_SOCKET of our own.
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl NotifySocket {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        Self {
            socket,
            _dir: dir,
            path,
        }
    }

    /// The next message containing `needle`, skipping others.
    pub(crate) fn expect(&self, needle: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {needle:?} notification: {e}"));
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.contains(needle) {
                return message;
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
