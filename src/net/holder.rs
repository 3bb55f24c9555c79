//! Who holds a UDP port: on Linux, the socket inode from
//! `/proc/net/udp{,6}` matched against the `/proc/*/fd` links. Processes of
//! other users stay invisible without privileges; then we say so.

use std::fmt;
use std::fs;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};

/// A process, as the port-conflict message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its process id.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`).
    pub name: String,
}

impl fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.name)
    }
}

/// The process holding UDP `port`, if it can be seen.
pub(crate) fn port_holder(port: u16) -> Option<ProcessInfo> {
    // The socket tables are read while other sockets come and go, which can
    // make a read skip a line: look twice before saying nobody holds it.
    (0..2).find_map(|_| {
        let inodes = bound_inodes(port);
        (!inodes.is_empty())
            .then(|| process_holding(&inodes))
            .flatten()
    })
}

/// The inodes of the UDP sockets bound to `port`, IPv4 and IPv6.
fn bound_inodes(port: u16) -> Vec<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| read_table(path))
        .flat_map(|table| socket_inodes(&table, |_, p| p == port))
        .collect()
}

/// The inodes of the UDP sockets bound to `addr`'s port at an address
/// that overlaps it (the same address, or either is the wildcard): every
/// socket that could take datagrams meant for ours.
pub(crate) fn inodes_overlapping(addr: SocketAddr) -> Vec<u64> {
    let table = if addr.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    let overlaps = |ip: Option<IpAddr>| {
        ip.is_some_and(|ip| ip == addr.ip() || ip.is_unspecified() || addr.ip().is_unspecified())
    };
    read_table(table)
        .map(|t| socket_inodes(&t, |ip, port| port == addr.port() && overlaps(ip)))
        .unwrap_or_default()
}

/// Reads a `/proc/net` table in as few reads as possible: each read of
/// that seq_file restarts its walk, so fewer reads skip fewer lines.
fn read_table(path: &str) -> Option<String> {
    let mut text = String::with_capacity(1 << 20);
    fs::File::open(path).ok()?.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The first process with a socket among `inodes` open.
fn process_holding(inodes: &[u64]) -> Option<ProcessInfo> {
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .ok()
                .and_then(|link| socket_inode(link.to_str()?))
                .is_some_and(|inode| inodes.contains(&inode))
        });
        if holds {
            let name = fs::read_to_string(entry.path().join("comm"))
                .map(|s| s.trim_end().to_owned())
                .unwrap_or_else(|_| "?".to_owned());
            return Some(ProcessInfo { pid, name });
        }
    }
    None
}

/// The inodes of the sockets in a `/proc/net/udp{,6}` table whose local
/// address and port pass `keep`.
fn socket_inodes(table: &str, keep: impl Fn(Option<IpAddr>, u16) -> bool) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (ip, port) = fields.get(1)?.rsplit_once(':')?;
            let inode = fields.get(9)?.parse::<u64>().ok()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            (keep(parse_ip(ip), port) && inode != 0).then_some(inode)
        })
        .collect()
}

/// The kernel prints addresses as native-endian 32-bit words in hex.
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<[u8; 4]>> = (0..hex.len() / 8)
        .map(|i| {
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()
                .map(u32::to_ne_bytes)
        })
        .collect();
    match words?.concat()[..] {
        [a, b, c, d] => Some(IpAddr::from([a, b, c, d])),
        ref bytes if bytes.len() == 16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_table() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  123: 0100007F:270F 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4242 2 0000000000000000 0\n\
  124: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0\n";
        let on = |port: u16| socket_inodes(table, |_, p| p == port);
        assert_eq!(on(9999), vec![4242]);
        assert_eq!(on(53), vec![777]);
        assert!(on(1).is_empty());
        let localhost = Some(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(socket_inodes(table, |ip, _| ip == localhost), vec![4242]);
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn finds_our_sockets_by_overlapping_address() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let socket = std::net::UdpSocket::bind(bind).unwrap();
            let addr = socket.local_addr().unwrap();
            let inode = nix::sys::stat::fstat(&socket).unwrap().st_ino;
            assert_eq!(inodes_overlapping(addr), vec![inode], "{addr}");
            let wide = SocketAddr::new(
                if addr.is_ipv4() {
                    [0, 0, 0, 0].into()
                } else {
                    [0u16; 8].into()
                },
                addr.port(),
            );
            assert_eq!(inodes_overlapping(wide), vec![inode], "{wide}");
            let other = SocketAddr::new(
                if addr.is_ipv4() {
                    [127, 0, 0, 2].into()
                } else {
                    [0, 0, 0, 0, 0, 0, 0, 2u16].into()
                },
                addr.port(),
            );
            assert!(inodes_overlapping(other).is_empty(), "{other}");
        }
    }

    #[test]
    fn finds_this_process_holding_a_socket() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let holder = port_holder(port).expect("our own socket is visible");
        assert_eq!(holder.pid, std::process::id());
    }
}
