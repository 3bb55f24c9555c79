//! What `run` prints for the person who started it, on stdout; logs go to
//! stderr through tracing.
//!
//! Nothing here may stop the service: stdout can be a closed pipe
//! (`discoveryd run | head -1`) or a full disk, and those writes fail
//! quietly instead of panicking as `println!` would.

use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{Config, ConfigSource};
use crate::duration::HumanDuration;

/// Writes one line to stdout, ignoring a closed or full stdout.
macro_rules! say {
    ($($arg:tt)*) => {
        line(format_args!($($arg)*))
    };
}

fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// Writes one line to stderr, ignoring a closed or full stderr.
pub(crate) fn error_line(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// The configuration block printed before binding.
pub(crate) fn banner(config: &Config, source: &ConfigSource, responders: &str) {
    let bind: Vec<String> = config.bind.iter().map(ToString::to_string).collect();
    let rust_log = std::env::var(crate::logging::RUST_LOG).unwrap_or_default();
    let mut logging = if !rust_log.trim().is_empty() {
        format!("RUST_LOG={rust_log} (logging and log_level not followed)")
    } else if config.logging {
        format!("on ({:?})", config.log_level).to_lowercase()
    } else {
        "off (warnings only)".into()
    };
    if config.log_format == crate::config::LogFormat::Json {
        logging.push_str(", as JSON lines");
    }
    say!(
        "discoveryd {} - UDP discovery service",
        env!("CARGO_PKG_VERSION")
    );
    say!("Configuration:");
    say!(
        "  config file:     {}",
        source
            .path
            .as_ref()
            .map_or("none (built-in defaults)".into(), |p| p
                .display()
                .to_string())
    );
    say!(
        "  port:            {}",
        if config.port == 0 {
            "0 (ephemeral)".into()
        } else {
            config.port.to_string()
        }
    );
    say!("  bind:            {}", bind.join(", "));
    say!("  message:         {}", config.message);
    say!("  response prefix: {}", config.response_prefix);
    if let Some(port) = config.service_port {
        say!("  service port:    {port}");
    }
    if let Some(ip) = config.advertise_ip {
        say!("  advertise ip:    {ip}");
    }
    say!("  buffer size:     {} bytes", config.buffer_size);
    say!("  logging:         {logging}");
    say!("  responders:      {responders}");
    say!(
        "  duration:        {}",
        config
            .duration
            .map_or("none (runs until stopped)".into(), |d| d.to_string())
    );
}

/// The status line once bound, and how to try it.
pub(crate) fn listening(addrs: &[SocketAddr]) {
    for addr in addrs {
        say!("[OK] discovery service listening on {addr}");
    }
    if let Some(addr) = addrs.first() {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        say!(
            "Test it with: discoveryd discover --target {}",
            SocketAddr::new(ip, addr.port())
        );
    }
}

/// The auto-stop line.
pub(crate) fn timer_set(after: HumanDuration) {
    say!("[TIMER] Auto-stop timer set for {after}");
}

/// The line printed when `duration` has elapsed.
pub(crate) fn duration_expired(after: HumanDuration) {
    say!("Duration expired ({after}). Stopping service...");
}

/// The last line of a clean stop.
pub(crate) fn stopped() {
    say!("[OK] Service stopped and cleaned up");
}
