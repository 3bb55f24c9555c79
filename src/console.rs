//! What `run` prints for the person who started it, on stdout; logs go to
//! stderr through tracing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{Config, ConfigSource};
use crate::duration::HumanDuration;
use crate::responders::Snapshot;

/// The configuration block printed before binding.
pub(crate) fn banner(config: &Config, source: &ConfigSource, snapshot: &Snapshot) {
    let bind: Vec<String> = config.bind.iter().map(ToString::to_string).collect();
    let logging = if config.logging {
        format!("on ({:?})", config.log_level).to_lowercase()
    } else {
        "off (warnings only)".into()
    };
    println!(
        "discoveryd {} - UDP discovery service",
        env!("CARGO_PKG_VERSION")
    );
    println!("Configuration:");
    println!(
        "  config file:     {}",
        source
            .path
            .as_ref()
            .map_or("none (built-in defaults)".into(), |p| p
                .display()
                .to_string())
    );
    println!(
        "  port:            {}",
        if config.port == 0 {
            "0 (ephemeral)".into()
        } else {
            config.port.to_string()
        }
    );
    println!("  bind:            {}", bind.join(", "));
    println!("  message:         {}", config.message);
    println!("  response prefix: {}", config.response_prefix);
    if let Some(port) = config.service_port {
        println!("  service port:    {port}");
    }
    if let Some(ip) = config.advertise_ip {
        println!("  advertise ip:    {ip}");
    }
    println!("  buffer size:     {} bytes", config.buffer_size);
    println!("  logging:         {logging}");
    println!("  responders:      {}", snapshot.describe());
    println!(
        "  duration:        {}",
        config
            .duration
            .map_or("none (runs until stopped)".into(), |d| d.to_string())
    );
}

/// The status line once bound, and how to try it.
pub(crate) fn listening(addrs: &[SocketAddr]) {
    for addr in addrs {
        println!("[OK] discovery service listening on {addr}");
    }
    if let Some(addr) = addrs.first() {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        println!(
            "Test it with: discoveryd discover --target {}",
            SocketAddr::new(ip, addr.port())
        );
    }
}

/// The auto-stop line.
pub(crate) fn timer_set(after: HumanDuration) {
    println!("[TIMER] Auto-stop timer set for {after}");
}

/// The line printed when `duration` has elapsed.
pub(crate) fn duration_expired(after: HumanDuration) {
    println!("Duration expired ({after}). Stopping service...");
}

/// The last line of a clean stop.
pub(crate) fn stopped() {
    println!("[OK] Service stopped and cleaned up");
}
