//! The daemon lifecycle: start, status, reload, stop, restart; the
//! pidfile lock; `run --replace`; SIGUSR1/SIGUSR2; systemd notifications.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::util::{
    alive, config_for, hold, loopback, output, settled, wait_gone, Background, Client, ConfigDir,
    Daemon, NotifySocket, DEADLINE,
};

#[test]
fn start_status_reload_stop() {
    let bg = Background::new("");
    let pid = bg.start();
    assert!(alive(pid));
    let client = Client::new();
    assert_eq!(
        client.ask(bg.port, b"DISCOVER_SERVER").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );

    // Status over the control socket, which only its owner may use.
    let socket = bg.pidfile().with_extension("sock");
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, out, _) = bg.cmd("status", &[]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("is running (pid {pid})")), "{out}");
    assert!(
        out.contains(&format!("listening:   127.0.0.1:{}", bg.port)),
        "{out}"
    );
    let status = settled(|| bg.status_json(), |s| s["counters"]["answered"] != 0);
    assert_eq!(status["pid"], pid);
    assert!(
        status["counters"]["answered"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert_eq!(status["config"], bg.config.path().to_str().unwrap());

    // Reload: a valid change applies, an invalid one is rejected (exit 2).
    bg.config
        .write(&config_for(bg.port, "message = \"RELOADED_MESSAGE\""));
    let (code, out, _) = bg.cmd("reload", &[]);
    assert_eq!(code, 0, "{out}");
    client.ask_until(bg.port, b"RELOADED_MESSAGE", "SERVER_IP:127.0.0.1");
    bg.config.write(&config_for(bg.port, "message = \"\""));
    let (code, out, _) = bg.cmd("reload", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("reload rejected") && out.contains("key `message`"),
        "{out}"
    );
    assert_eq!(
        client.ask(bg.port, b"RELOADED_MESSAGE").as_deref(),
        Some("SERVER_IP:127.0.0.1")
    );
    let status = bg.status_json();
    assert_eq!(status["reloads"]["last"]["result"], "rejected", "{status}");

    let (code, out, _) = bg.cmd("stop", &[]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("stopped pid {pid}").as_str())
    );
    wait_gone(pid);
    assert!(
        !bg.pidfile().exists() && !socket.exists(),
        "stop leaves no files behind"
    );
    let (code, out, _) = bg.cmd("status", &[]);
    assert_eq!((code, out.trim()), (3, "discoveryd is not running"));
    assert!(
        bg.log_text()
            .contains("[OK] Service stopped and cleaned up"),
        "{}",
        bg.log_text()
    );
}

#[test]
fn stop_when_nothing_runs_succeeds() {
    let bg = Background::new("");
    let (code, out, _) = bg.cmd("stop", &[]);
    assert_eq!((code, out.trim()), (0, "discoveryd is not running"));
    // LSB: reload of a service that is not running is 7, status is 3.
    let (code, out, _) = bg.cmd("reload", &[]);
    assert_eq!((code, out.trim()), (7, "discoveryd is not running"));
    let (code, out, _) = bg.cmd("status", &[]);
    assert_eq!((code, out.trim()), (3, "discoveryd is not running"));
    let (code, out, err) = bg.cmd("status", &["--json"]);
    assert_eq!(code, 3, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON even when not running");
    assert_eq!(doc["running"], false);
    assert_eq!(doc["pid"], serde_json::Value::Null);
    assert_eq!(doc["pidfile"], bg.pidfile().to_str().unwrap());
}

#[test]
fn a_second_start_reports_the_first_and_exits_3() {
    let bg = Background::new("");
    let pid = bg.start();
    let (code, _, err) = bg.cmd("start", &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("already running with pid {pid}")),
        "{err}"
    );
    assert!(alive(pid));
}

#[test]
fn a_killed_daemons_stale_pidfile_is_detected_and_replaced() {
    let bg = Background::new("");
    let first = bg.start();
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    wait_gone(first);
    assert!(bg.pidfile().exists(), "kill -9 leaves the pidfile");
    // LSB: 1 is "dead, and the pidfile exists".
    let (code, out, _) = bg.cmd("status", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("pid {first} died without removing it")),
        "{out}"
    );
    let (code, out, _) = bg.cmd("status", &["--json"]);
    assert_eq!(code, 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (doc["running"].clone(), doc["stale_pid"].clone()),
        (false.into(), first.into())
    );
    let second = bg.start();
    assert_ne!(first, second);
    bg.expect_log("replaced a stale pidfile");
    assert!(Client::new().ask(bg.port, b"DISCOVER_SERVER").is_some());
}

#[test]
fn start_reports_the_daemons_own_error_and_exit_code() {
    let bg = Background::new("[supervision.retry_after_cleanup]\nattempts = 1\ndelay = \"20ms\"");
    let _held = hold(bg.port);
    let (code, out, err) = bg.cmd("start", &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.is_empty(), "never reports success first: {out}");
    assert!(
        err.contains(&format!("port {}/udp", bg.port)) && err.contains("in use by"),
        "{err}"
    );
    assert!(!bg.pidfile().exists());

    bg.config.write("port = 70000\n");
    let (code, _, err) = bg.cmd("start", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("key `port`"), "{err}");
}

#[test]
fn restart_replaces_the_daemon() {
    let bg = Background::new("");
    let first = bg.start();
    let (code, out, err) = bg.cmd("restart", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("stopped pid {first}")), "{out}");
    wait_gone(first);
    assert!(Client::new().ask(bg.port, b"DISCOVER_SERVER").is_some());
}

#[test]
fn run_refuses_a_held_pidfile_unless_told_to_replace() {
    let bg = Background::new("");
    let first = bg.start();
    let (config, pidfile) = (bg.config.path(), bg.pidfile());
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ];
    let (code, _, err) = output(&args);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("already running with pid {first}")) && err.contains("--replace"),
        "{err}"
    );

    let mut args = args.to_vec();
    args.push("--replace");
    let mut replacement = Daemon::spawn(&args);
    assert_eq!(replacement.listening_port(), bg.port);
    wait_gone(first);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        replacement.pid().to_string()
    );
    replacement.signal(Signal::SIGTERM);
    assert_eq!(replacement.wait(), 0);
}

#[test]
fn sigusr1_logs_a_status_snapshot_and_sigusr2_reopens_the_log() {
    let bg = Background::new("");
    let pid = Pid::from_raw(bg.start() as i32);
    kill(pid, Signal::SIGUSR1).unwrap();
    bg.expect_log("status snapshot");
    // logrotate: move the file away, then ask for a new one.
    let rotated = bg.log().with_extension("log.1");
    std::fs::rename(bg.log(), &rotated).unwrap();
    kill(pid, Signal::SIGUSR2).unwrap();
    bg.expect_log("log file reopened");
    kill(pid, Signal::SIGUSR1).unwrap();
    bg.expect_log("status snapshot");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(
        old.matches("status snapshot").count(),
        1,
        "the rotated file got new lines:\n{old}"
    );
}

#[test]
fn systemd_notifications_follow_the_lifecycle() {
    let notify = NotifySocket::new();
    let config = ConfigDir::new(&loopback(""));
    let path = config.path();
    let mut daemon = Daemon::spawn_with_env(
        &["run", "--port", "0", "--config", path.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", notify.path().to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let port = daemon.listening_port();
    let ready = notify.expect("READY=1");
    assert!(
        ready.contains(&format!("STATUS=listening on 127.0.0.1:{port}")),
        "{ready}"
    );
    notify.expect("WATCHDOG=1");

    config.write(&config_for(port, "message = \"NOTIFIED_MESSAGE\""));
    let reloading = notify.expect("RELOADING=1");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC")
        .parse()
        .unwrap();
    // systemd matches it against its own CLOCK_MONOTONIC: a moment ago.
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now_usec = now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000;
    assert!(
        usec <= now_usec && now_usec - usec < DEADLINE.as_micros() as u64,
        "MONOTONIC_USEC={usec}, now {now_usec}"
    );
    let done = notify.expect("READY=1");
    assert!(done.contains("STATUS=reload applied: message"), "{done}");

    // SIGHUP with nothing changed still completes a reload cycle.
    daemon.signal(Signal::SIGHUP);
    notify.expect("RELOADING=1");
    let done = notify.expect("READY=1");
    assert!(done.contains("reload unchanged"), "{done}");

    daemon.signal(Signal::SIGTERM);
    notify.expect("STOPPING=1");
    assert_eq!(daemon.wait(), 0);
}

#[test]
fn the_unit_file_works_on_systemd_252_with_its_hardening() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/discoveryd.service"),
    )
    .unwrap();
    for line in [
        // notify-reload needs systemd 253; 252 would run the unit as simple.
        "Type=notify",
        "ExecReload=/usr/local/bin/discoveryd reload --pidfile /run/discoveryd/discoveryd.pid",
        // Netlink lists the interfaces that on_link_only needs.
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "#AmbientCapabilities=CAP_NET_BIND_SERVICE",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line:?}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    assert!(
        exec.contains(" run --config ")
            && exec.ends_with(" --pidfile /run/discoveryd/discoveryd.pid"),
        "systemd runs the foreground command, with root's default pidfile: {exec}"
    );
    let variant = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/discoveryd.service.d/notify-reload.conf"),
    )
    .unwrap();
    assert!(
        variant.lines().any(|l| l == "Type=notify-reload"),
        "{variant}"
    );
    assert!(variant.lines().any(|l| l == "ExecReload="), "{variant}");
}

#[test]
fn start_detaches_fully() {
    let bg = Background::new("");
    let pid = bg.start();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    assert_eq!(
        std::fs::read_link(proc.join("cwd")).unwrap(),
        Path::new("/")
    );
    assert_eq!(
        std::fs::read_link(proc.join("fd/0")).unwrap(),
        Path::new("/dev/null")
    );
    for fd in ["fd/1", "fd/2"] {
        assert_eq!(std::fs::read_link(proc.join(fd)).unwrap(), bg.log(), "{fd}");
    }
    // Its own session (not ours), and not its leader: the second fork means
    // it can never acquire a controlling terminal.
    let stat = std::fs::read_to_string(proc.join("stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let (ppid, session, tty): (u32, u32, i64) = (
        fields[1].parse().unwrap(),
        fields[3].parse().unwrap(),
        fields[4].parse().unwrap(),
    );
    assert_ne!(
        session,
        nix::unistd::getsid(None).unwrap().as_raw() as u32,
        "still in our session"
    );
    assert_ne!(session, pid, "a session leader could acquire a terminal");
    assert_eq!(tty, 0, "no controlling terminal");
    assert_ne!(ppid, std::process::id(), "reparented away from the starter");
}

#[test]
fn stop_kills_what_ignores_sigterm_after_the_timeout() {
    let bg = Background::new("");
    let pid = bg.start();
    // A stopped process cannot act on SIGTERM.
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let (code, out, err) = bg.cmd("stop", &["--timeout", "300ms"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!("pid {pid} ignored SIGTERM for 300ms; killed it")
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    wait_gone(pid);
    assert!(!bg.pidfile().exists() && !bg.pidfile().with_extension("sock").exists());
}
