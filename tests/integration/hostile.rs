//! The second round from outside: what a hostile local user or a careless
//! operator did to a discoveryd that had passed the first round. Each test
//! is the regression test of one reproduced defect.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::{
    alive, bin, config_for, free_port, hold, loopback, output, output_within, wait_gone,
    write_whole, Background, Client, ConfigDir, Daemon, DEADLINE,
};

/// `discoveryd <args>` with `--config` and `--pidfile` in `dir`.
fn in_dir(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(["--config".into(), dir.join("c.toml").display().to_string()]);
    output_within(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn no_spelling_of_the_config_file_can_be_used_as_pidfile_socket_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A pre-chosen port: `start` (refused here) has no `--port`.
    let body = config_for(free_port(), "");
    std::fs::write(d.join("c.toml"), &body).unwrap();
    let dotdot = format!(
        "{}/../{}/c.toml",
        d.display(),
        d.file_name().unwrap().to_str().unwrap()
    );
    for (args, key) in [
        (
            vec!["run", "--port", "0", "--pidfile", dotdot.as_str()],
            "pidfile",
        ),
        (
            vec![
                "start",
                "--pidfile",
                "/tmp/x.pid",
                "--log-file",
                dotdot.as_str(),
            ],
            "log_file",
        ),
    ] {
        let (code, _, err) = in_dir(d, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(&format!("key `{key}`")) && err.contains("is also the config file"),
            "{err}"
        );
    }
    // Through a symlink.
    std::fs::rename(d.join("c.toml"), d.join("real.toml")).unwrap();
    std::os::unix::fs::symlink("real.toml", d.join("c.toml")).unwrap();
    let real = d.join("real.toml");
    let (code, _, err) = in_dir(
        d,
        &["run", "--port", "0", "--pidfile", real.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    // A config named like the control socket of the pidfile.
    std::fs::write(d.join("c.sock"), &body).unwrap();
    let (code, _, err) = output_within(&[
        "run",
        "--port",
        "0",
        "--config",
        d.join("c.sock").to_str().unwrap(),
        "--pidfile",
        d.join("c.pid").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is also the config file (as the control socket)"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), body);
    assert_eq!(std::fs::read_to_string(d.join("c.sock")).unwrap(), body);
}

#[test]
fn a_directory_anyone_can_write_anywhere_above_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir_all(open.join("sub")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    // A pre-chosen port: `start` (refused here) has no `--port`.
    let config = ConfigDir::new(&config_for(free_port(), ""));
    let pidfile = open.join("sub/d.pid");
    let (code, _, err) = output_within(&[
        "start",
        "--config",
        config.path().to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("every user can write"), "{err}");
    assert!(!pidfile.exists());
}

#[test]
fn stop_and_status_never_touch_a_file_that_is_not_a_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.conf");
    std::fs::write(&precious, "important\n").unwrap();
    let sock = dir.path().join("precious.conf.sock");
    std::fs::write(&sock, "also important\n").unwrap();
    let (code, _, err) = output_within(&["stop", "--pidfile", precious.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a pidfile"), "{err}");
    let (code, out, _) =
        output_within(&["status", "--json", "--pidfile", precious.to_str().unwrap()]);
    assert_eq!(code, 4, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        doc["running"].is_null() && doc["error"].as_str().unwrap().contains("not a pidfile"),
        "{doc}"
    );
    let (code, _, err) = output_within(&[
        "run",
        "--port",
        "0",
        "--pidfile",
        precious.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "important\n");
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "also important\n");
}

#[test]
fn restart_checks_its_files_before_it_stops_anything() {
    let bg = Background::new("");
    let first = bg.start();
    let dir = bg.config.path().parent().unwrap().to_owned();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("evil.log")).unwrap();
    let (code, out, err) = bg.cmd(
        "restart",
        &["--log-file", dir.join("evil.log").to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("cannot open the log file") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(alive(first), "the running instance was stopped");
    assert!(Client::new().ask(bg.port, b"DISCOVER_SERVER").is_some());
}

#[test]
fn a_broken_config_still_leads_to_its_running_instance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    // A pre-chosen port: `start` has no `--port`.
    std::fs::write(
        &path,
        config_for(
            free_port(),
            &format!("pidfile = \"{}/d.pid\"", dir.path().display()),
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let (code, out, err) = output_within(&["start", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("garbage here\n");
    write_whole(&path, &text);
    let (code, out, err) = output_within(&["status", "--json", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("the config cannot be read"), "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["running"],
        true
    );
    // reload reaches it, and reports the daemon's own rejection.
    let (code, out, err) = output_within(&["reload", "--config", config]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.starts_with("reload rejected"), "{out}");
    let (code, out, err) = output_within(&["stop", "--config", config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("stopped pid"), "{out}");
}

#[test]
fn a_notify_socket_nobody_reads_never_wedges_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let _deaf = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    let config = ConfigDir::new(&loopback(""));
    let path = config.path();
    let mut daemon = Daemon::spawn_with_env(
        &["run", "--port", "0", "--config", path.to_str().unwrap()],
        &[
            ("DISCOVERYD_BIND", "127.0.0.1"),
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    daemon.listening_port();
    // A datagram queue holds a few messages; pings every 100 ms fill it
    // within a second or two. Status must keep answering all along.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert!(daemon.status()["pid"].is_u64());
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(), 0);
}

#[test]
fn start_keeps_none_of_the_callers_descriptors() {
    // A caller waiting for EOF on a pipe (`discoveryd start | cat`, CI
    // runners, ssh) must not wait for the daemon's whole life.
    let bg = Background::new("");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let (config, pidfile) = (bg.config.path(), bg.pidfile());
    let script = format!(
        "exec 3>'{}'; exec '{}' start --config '{}' --pidfile '{}'",
        fifo.display(),
        bin(),
        config.display(),
        pidfile.display()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // Every writer gone: a read says end-of-file; a writer left: EAGAIN.
    let mut buf = [0u8; 8];
    let read = std::io::Read::read(&mut &reader, &mut buf);
    assert_eq!(
        read.map_err(|e| e.kind()),
        Ok(0),
        "the daemon kept the caller's pipe open"
    );
}

use std::os::unix::fs::OpenOptionsExt as _;

#[test]
fn a_daemon_still_binding_is_not_reported_listening_and_start_gives_up_on_it() {
    // A pre-chosen port, held by another program.
    let busy = free_port();
    let _held = hold(busy);
    let retries = "[supervision.retry_after_cleanup]\nattempts = 1000\ndelay = \"200ms\"";
    let config = ConfigDir::new(&config_for(busy, retries));
    let path = config.path();
    let mut daemon = Daemon::spawn(&["run", "--config", path.to_str().unwrap()]);
    daemon.expect_stderr("retrying bind after cleanup");
    let status = daemon.status();
    assert_eq!(
        (status["ready"].clone(), status["addrs"].clone()),
        (false.into(), serde_json::json!([]))
    );
    drop(daemon);

    let bg = Background::new(retries);
    let _held = hold(bg.port);
    let (code, out, err) = bg.cmd("start", &["--wait", "1s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("was not listening after 1s, so it was stopped"),
        "{err}"
    );
    let deadline = Instant::now() + DEADLINE;
    while bg.pidfile().exists() {
        assert!(Instant::now() < deadline, "the daemon was left running");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

#[test]
fn sigusr1_writes_its_snapshot_whatever_the_log_level() {
    let bg = Background::new("logging = false");
    let pid = bg.start();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGUSR1).unwrap();
    bg.expect_log("status snapshot");
    drop(bg);
    wait_gone(pid);
}

#[test]
fn odd_arguments_get_usage_errors_not_nonsense() {
    let (code, _, err) = output(&["bench", "--duration", "1ns"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("too short to send a single request"), "{err}");
    let (_daemon, port) = Daemon::run(&ConfigDir::new(&loopback("")), &[]);
    let out = Command::new(bin())
        .args([
            "discover",
            "--json",
            "--target",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_broken_config_leads_to_its_instance_under_another_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.toml");
    let link = dir.path().join("link.toml");
    // A pre-chosen port: `start` has no `--port`.
    std::fs::write(
        &real,
        config_for(
            free_port(),
            &format!("pidfile = \"{}/d.pid\"", dir.path().display()),
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink("real.toml", &link).unwrap();
    let (code, out, err) = output_within(&["start", "--config", link.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    write_whole(&real, "garbage here\n");
    let (code, out, err) = output_within(&["stop", "--config", real.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("stopped pid"), "{out}");
}

#[test]
fn a_pidfile_held_before_its_pid_is_written_names_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("d.pid");
    let file = std::fs::File::create(&pidfile).unwrap();
    let _held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let (code, out, err) =
        output_within(&["run", "--port", "0", "--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("already running with pid {}", std::process::id())),
        "{err}"
    );
}

/// `discoveryd run --port 0 <args>` under `ulimit -n` limits (soft, hard).
fn run_limited(dir: &Path, soft: u32, hard: u32, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\""
        ))
        .arg(bin())
        .args(["run", "--port", "0", "--pidfile"])
        .arg(dir.join("d.pid"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text.into_owned())
}

#[test]
fn a_low_open_file_limit_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run_limited(dir.path(), 12, 12, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("open-file limit is 12") && text.contains("ulimit -n"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    // A low soft limit under a higher hard one is raised, not refused.
    let (code, text) = run_limited(dir.path(), 12, 1024, &["--duration", "1ms"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("listening"), "{text}");
}

#[test]
fn a_pidfile_given_to_start_is_the_instance_whatever_else_runs_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, config_for(free_port(), "")).unwrap();
    let (config, x, y) = (
        config.to_str().unwrap().to_owned(),
        dir.path().join("x.pid"),
        dir.path().join("y.pid"),
    );
    let start = |pidfile: &Path, port: u16| {
        let out = Command::new(bin())
            .args(["start", "--config", &config, "--pidfile"])
            .arg(pidfile)
            .env("DISCOVERYD_PORT", port.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text.into_owned())
    };
    let (code, text) = start(&x, free_port());
    assert_eq!(code, Some(0), "{text}");
    // Another instance of the same config, under a pidfile of its own.
    let (code, text) = start(&y, free_port());
    assert_eq!(code, Some(0), "{text}");
    for pidfile in [&x, &y] {
        let (code, out, err) = output_within(&["stop", "--pidfile", pidfile.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("stopped pid"), "{out}");
    }
}
