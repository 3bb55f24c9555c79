//! The discovery client: sends the request to every IPv4 broadcast
//! address and to any targets, and collects the answers until the timeout
//! (or the first one). Duplicates are removed by (ip, port); malformed
//! answers are counted, never trusted. A broadcast to a LAN of hundreds of
//! servers gets hundreds of answers at once: the socket gets a receive
//! buffer sized for them, and every wake-up drains it in batches.
//!
//! [`discover`] is async (tokio); [`discover_blocking`] wraps it for
//! callers without a runtime.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::config::Config;
use crate::net::{set_recv_buffer, Batch};
use crate::protocol::{parse_reply, MAX_REPLY};

/// What to ask, where, and how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// The discovery request.
    pub message: String,
    /// The prefix answers must start with.
    pub response_prefix: String,
    /// The port broadcasts go to.
    pub port: u16,
    /// How long to wait for answers.
    pub timeout: Duration,
    /// Extra destinations (unicast or broadcast).
    pub targets: Vec<SocketAddr>,
    /// Also send to every IPv4 interface's broadcast address.
    pub broadcast: bool,
    /// Return at the first valid answer.
    pub first: bool,
    /// Also send this request (the json responder's, padded), and list the
    /// services registered with each server that answers it; `None`: send
    /// only the discovery request.
    pub services_request: Option<Vec<u8>>,
}

impl DiscoverOptions {
    /// Options matching a server configuration: same message, prefix and
    /// port, the configured `timeout`, broadcast only.
    pub fn from_config(config: &Config) -> Self {
        Self {
            message: config.message.clone(),
            response_prefix: config.response_prefix.clone(),
            port: config.port,
            timeout: config.timeout.get(),
            targets: Vec::new(),
            broadcast: true,
            first: false,
            services_request: Some(services_request(config)),
        }
    }
}

/// The json responder's request, as `config` sets it (`DISCOVER_JSON` by
/// default), padded with spaces to `buffer_size`: the longer the request,
/// the longer the answer the server's amplification cap lets through, and
/// the more services it lists.
fn services_request(config: &Config) -> Vec<u8> {
    let message = config
        .responders
        .iter()
        .find(|r| r.kind == "json")
        .and_then(|r| r.options.get("message")?.as_str())
        .unwrap_or("DISCOVER_JSON");
    let mut request = message.as_bytes().to_vec();
    request.resize(config.buffer_size.max(request.len()), b' ');
    request
}

/// The most registered services one discovery keeps.
pub(crate) const MAX_SERVICES: usize = 4096;

/// The most servers one discovery keeps.
pub(crate) const MAX_SERVERS: usize = 4096;

/// The most distinct servers kept from one source address: a server
/// answers once per request, so more is one host posing as many.
pub(crate) const MAX_PER_SOURCE: usize = 8;

/// The most malformed answers kept (all are counted).
pub(crate) const MAX_MALFORMED: usize = 64;

/// A server that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    /// The address it advertises.
    pub ip: IpAddr,
    /// The service port it advertises, if any.
    pub port: Option<u16>,
    /// Where the answer came from.
    pub from: SocketAddr,
    /// Time from sending to this answer.
    #[serde(rename = "rtt_ms", serialize_with = "millis")]
    pub rtt: Duration,
    /// The answer as received.
    pub reply: String,
}

/// An answer that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    /// Where it came from.
    pub from: SocketAddr,
    /// Why it was rejected.
    pub reason: String,
    /// The start of it, lossily decoded.
    pub reply: String,
}

/// A service registered with a server that answered, from the json
/// responder's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FoundService {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its address (a service on the server's own host: the server's
    /// address, as the server answered).
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its metadata.
    #[serde(default)]
    pub txt: std::collections::BTreeMap<String, String>,
    /// The server it is registered with (the address it advertises).
    #[serde(default = "unspecified")]
    pub server: IpAddr,
}

fn unspecified() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// The json responder's document, as far as discovery reads it.
#[derive(serde::Deserialize)]
struct ServicesDocument {
    ip: IpAddr,
    #[serde(default)]
    services: Vec<FoundService>,
    #[serde(default)]
    services_total: usize,
}

/// The outcome of one discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// The servers found, in order of answer, without duplicates.
    pub servers: Vec<Server>,
    /// The services registered with them (`PUT /v1/services/{id}`), from
    /// the servers that run the json responder, without duplicates.
    pub services: Vec<FoundService>,
    /// Registered services a server had but could not fit in its answer.
    pub services_left_out: u64,
    /// Answers ignored because they were malformed (the first 64).
    pub malformed: Vec<Malformed>,
    /// Answers not kept: servers past 4,096 (or past 8 from one address),
    /// and malformed answers past 64. A flood of fake answers fills no more.
    pub dropped: u64,
    /// Where the request was sent.
    pub sent_to: Vec<SocketAddr>,
    /// Destinations the request could not be sent to, and why.
    pub send_errors: Vec<(SocketAddr, String)>,
    /// How long the discovery took.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
}

/// `text` for a terminal: every control character (C0, DEL, C1) and the
/// bidirectional overrides escaped as `\n`, `\u{1b}`..., as
/// `char::escape_default` writes them; printable text, backslashes and
/// quotes kept as they are. What the network sends cannot move the cursor,
/// recolour the terminal or forge a line.
pub(crate) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unprintable(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` from the network for a table cell: escaped (see
/// [`escape_controls`]) and cut to `max` characters (ending with `...`),
/// so that no value makes every row as wide as itself.
pub(crate) fn cell(text: &str, max: usize) -> String {
    let escaped = escape_controls(text);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let cut: String = escaped.chars().take(max.saturating_sub(3)).collect();
    format!("{cut}...")
}

/// The widest a table cell from the network is shown (`--json` has it
/// whole).
pub(crate) const MAX_CELL: usize = 64;

/// A character that changes how text around it shows instead of showing
/// itself: controls (C0, DEL, C1), bidirectional marks, overrides and
/// isolates, zero-width characters, and the line and paragraph separators.
pub(crate) fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// The longest `timeout` a discovery takes (`--timeout`, the config's
/// `timeout`), for either mode: far beyond any LAN's answer, and well
/// within what a deadline (`Instant` + timeout) can hold.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

pub(crate) fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// The broadcast address of every IPv4 interface that is up and can
/// broadcast (loopback excluded).
pub(crate) fn broadcast_addresses() -> Vec<Ipv4Addr> {
    let Ok(interfaces) = getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<Ipv4Addr> = interfaces
        .filter(|i| {
            i.flags
                .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_BROADCAST)
        })
        .filter(|i| !i.flags.contains(InterfaceFlags::IFF_LOOPBACK))
        .filter_map(|i| i.broadcast?.as_sockaddr_in().map(|a| a.ip()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// True for an address that reaches many hosts: the limited broadcast
/// address, an interface's broadcast address, or a multicast group.
pub(crate) fn is_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_broadcast() || v4.is_multicast() || broadcast_addresses().contains(&v4)
        }
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// Runs one discovery.
pub async fn discover(options: &DiscoverOptions) -> io::Result<Discovery> {
    let mut destinations = options.targets.clone();
    if options.broadcast {
        destinations.extend(
            broadcast_addresses()
                .into_iter()
                .map(|ip| SocketAddr::new(ip.into(), options.port)),
        );
    }
    let mut seen = HashSet::new();
    destinations.retain(|d| seen.insert(*d));

    let v4 = bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    let v6 = if destinations.iter().any(SocketAddr::is_ipv6) {
        Some(bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?)
    } else {
        None
    };

    let start = Instant::now();
    let mut discovery = Discovery::default();
    for &to in &destinations {
        let socket = if to.is_ipv6() {
            v6.as_ref().unwrap_or(&v4)
        } else {
            &v4
        };
        match socket.send_to(options.message.as_bytes(), to).await {
            Ok(_) => discovery.sent_to.push(to),
            Err(e) => discovery.send_errors.push((to, e.to_string())),
        }
        if let Some(request) = &options.services_request {
            // Its failure is the first request's too: counted once.
            let _ = socket.send_to(request, to).await;
        }
    }
    if !discovery.sent_to.is_empty() {
        let mut deadline = tokio::time::Instant::from_std(start + options.timeout.min(MAX_TIMEOUT));
        // Without broadcasts, the answer of every target is all there is to
        // wait for (a unicast server answers from the address asked); then
        // a moment more for their services, from those that list them.
        let mut unanswered: Option<HashSet<SocketAddr>> =
            (!options.broadcast).then(|| discovery.sent_to.iter().copied().collect());
        let mut grace = false;
        let mut collector = Collector {
            options,
            start,
            seen: HashSet::new(),
            per_source: HashMap::new(),
            answered: HashSet::new(),
            documents: HashMap::new(),
            discovery: &mut discovery,
        };
        // Hundreds of servers answer a broadcast at once: each wake-up
        // drains the socket that is ready in batches (recvmmsg), until the
        // kernel has nothing more queued.
        // Room for a services document as large as the request's size
        // allows (3 times it by default; 4 here).
        let room = options
            .services_request
            .as_ref()
            .map_or(0, |r| ((r.len() + 48) * 4).min(crate::config::MAX_DATAGRAM));
        // One batch per socket: a batch's headers keep the address length
        // the last datagram had, and an IPv4 one would cut the next IPv6
        // sender short.
        let mut batch_v4 = Batch::new(room.max(MAX_REPLY));
        let mut batch_v6 = v6.as_ref().map(|_| Batch::new(room.max(MAX_REPLY)));
        let mut done = false;
        while !done {
            let ready = tokio::time::timeout_at(deadline, async {
                match &v6 {
                    Some(v6) => tokio::select! {
                        r = v4.readable() => r.map(|()| &v4),
                        r = v6.readable() => r.map(|()| v6),
                    },
                    None => v4.readable().await.map(|()| &v4),
                }
            })
            .await;
            let socket = match ready {
                Err(_elapsed) => break,
                Ok(Err(_)) => continue,
                Ok(Ok(socket)) => socket,
            };
            let batch = match &mut batch_v6 {
                Some(b6) if !std::ptr::eq(socket, &v4) => b6,
                _ => &mut batch_v4,
            };
            loop {
                let fd = socket.as_raw_fd();
                let received = socket.try_io(Interest::READABLE, || {
                    batch.recv(fd, false).map_err(io::Error::from)
                });
                match received {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP errors from unreachable targets surface here: skip them.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
                for (d, reply) in batch.payloads() {
                    let Some(from) = d.peer else { continue };
                    if done || !collector.take(reply, from) {
                        done = done || (grace && collector.all_listed());
                        continue;
                    }
                    if options.first {
                        done = true;
                    }
                    if let Some(left) = &mut unanswered {
                        left.remove(&from);
                        if left.is_empty() {
                            done = true;
                        }
                    }
                    if done && !options.first && options.services_request.is_some() {
                        // The services answer may trail the discovery one:
                        // wait as long again (at least 5 ms) for it.
                        let elapsed = start.elapsed().max(SERVICES_GRACE);
                        deadline = deadline.min(tokio::time::Instant::now() + elapsed);
                        grace = true;
                        done = collector.all_listed();
                    }
                }
                if done {
                    break;
                }
            }
        }
        collector.finish();
    }
    discovery.elapsed = start.elapsed();
    Ok(discovery)
}

/// Resolves a `--target`: `HOST`, `HOST:PORT`, `IP`, `[IPv6]` or
/// `[IPv6]:PORT`; `default_port` when none is given.
pub(crate) fn resolve_target(target: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs = resolve_any(target, default_port)?;
    if addrs.iter().any(|a| a.port() == 0) {
        return Err(format!(
            "--target {target}: port 0 is no server's port; give HOST:PORT with a port from 1 to 65535"
        ));
    }
    Ok(addrs)
}

fn resolve_any(target: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = target.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let bare = target
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(target);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, default_port)]);
    }
    let (host, port) = match target.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().map_err(|_| {
                format!("--target {target}: `{port}` is not a port; give HOST or HOST:PORT")
            })?;
            (host, port)
        }
        None => (target, default_port),
    };
    use std::net::ToSocketAddrs as _;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("--target {target}: cannot resolve `{host}` ({e}); give an IP address or a known host name"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!(
            "--target {target}: `{host}` has no address; give an IP address"
        ));
    }
    Ok(addrs)
}

impl Discovery {
    /// A table of the servers found, one line each, for people.
    pub fn table(&self) -> String {
        let width = self
            .servers
            .iter()
            .map(|s| s.ip.to_string().len())
            .max()
            .unwrap_or(0)
            .max(15);
        let mut out = format!("{:<width$} {:>5} {:>10}  REPLY\n", "IP", "PORT", "RTT");
        for s in &self.servers {
            let port = s.port.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let rtt = format!("{:.2} ms", s.rtt.as_secs_f64() * 1e3);
            out.push_str(&format!(
                "{:<width$} {:>5} {:>10}  {}\n",
                s.ip.to_string(),
                port,
                rtt,
                s.reply
            ));
        }
        if !self.services.is_empty() {
            out.push('\n');
            out.push_str(&self.services_table());
        }
        out
    }

    /// The registered services found, one line each; what the network
    /// sent is shown with its control characters escaped.
    fn services_table(&self) -> String {
        let rows: Vec<[String; 6]> = self
            .services
            .iter()
            .map(|s| {
                let txt: Vec<String> = s.txt.iter().map(|(k, v)| format!("{k}={v}")).collect();
                [
                    cell(&s.id, MAX_CELL),
                    cell(&s.name, MAX_CELL),
                    s.address.to_string(),
                    s.port.to_string(),
                    s.server.to_string(),
                    cell(&txt.join(" "), 4 * MAX_CELL),
                ]
            })
            .collect();
        let head = ["SERVICE", "NAME", "ADDRESS", "PORT", "SERVER", "TXT"];
        let widths: Vec<usize> = (0..5)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: [&str; 6]| {
            let mut l = String::new();
            for (i, cell) in cells[..5].iter().enumerate() {
                if i == 3 {
                    l.push_str(&format!("{cell:>w$}  ", w = widths[i]));
                } else {
                    l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            l.push_str(cells[5]);
            format!("{}\n", l.trim_end())
        };
        let mut out = line(head);
        for r in &rows {
            out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
        }
        out
    }

    /// One line summing the discovery up.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} server(s) found in {:.0} ms; request sent to {} destination(s); {} malformed repl(ies) ignored",
            self.servers.len(),
            self.elapsed.as_secs_f64() * 1e3,
            self.sent_to.len(),
            self.malformed.len(),
        );
        if !self.services.is_empty() || self.services_left_out > 0 {
            line.push_str(&format!(
                "; {} registered service(s) listed",
                self.services.len()
            ));
        }
        if self.services_left_out > 0 {
            line.push_str(&format!(
                " ({} more did not fit in the answers; GET /v1/services lists them all)",
                self.services_left_out
            ));
        }
        if self.dropped > 0 {
            line.push_str(&format!(
                "; {} more answer(s) dropped (at most {MAX_SERVERS} servers, {MAX_PER_SOURCE} from one address, {MAX_MALFORMED} malformed)",
                self.dropped
            ));
        }
        line
    }

    /// The whole outcome as one JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a discovery always serializes")
    }
}

/// [`discover`] on a private single-threaded runtime.
pub fn discover_blocking(options: &DiscoverOptions) -> io::Result<Discovery> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(discover(options))
}

/// The receive buffer a client asks for: room for thousands of answers
/// arriving at once (each small datagram takes about 1 KiB of kernel
/// memory), while the loop is not running.
pub(crate) const CLIENT_RECV_BUFFER: usize = 8 << 20;

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_broadcast(true)?;
    // SO_RCVBUFFORCE when privileged, else SO_RCVBUF up to
    // net.core.rmem_max: whatever the kernel grants, silently.
    set_recv_buffer(&socket, CLIENT_RECV_BUFFER);
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// How long, at least, discovery waits for the services answers after
/// the discovery answers of every target.
const SERVICES_GRACE: Duration = Duration::from_millis(5);

/// Sorts answers into servers, services and malformed ones.
struct Collector<'a> {
    options: &'a DiscoverOptions,
    start: Instant,
    seen: HashSet<(IpAddr, Option<u16>)>,
    per_source: HashMap<IpAddr, usize>,
    /// Where valid discovery answers came from.
    answered: HashSet<SocketAddr>,
    /// The services documents, by sender.
    documents: HashMap<SocketAddr, ServicesDocument>,
    discovery: &'a mut Discovery,
}

impl Collector<'_> {
    /// Whether every server that answered has listed its services.
    fn all_listed(&self) -> bool {
        self.answered.iter().all(|a| self.documents.contains_key(a))
    }

    /// Records a services document; false when it is not one. It is kept
    /// aside until [`Collector::finish`]: only the services of a server
    /// that answered the discovery request from the same address count.
    fn take_services(&mut self, reply: &[u8], from: SocketAddr) -> bool {
        let Ok(document) = serde_json::from_slice::<ServicesDocument>(reply) else {
            return false;
        };
        // One document per source, as many per address as servers, and as
        // many in all: more is a flood.
        let from_here = self
            .documents
            .keys()
            .filter(|f| f.ip() == from.ip())
            .count();
        if self.documents.contains_key(&from)
            || from_here >= MAX_PER_SOURCE
            || self.documents.len() >= MAX_SERVERS
        {
            self.discovery.dropped += 1;
            return true;
        }
        self.documents.insert(from, document);
        true
    }

    /// Lists the services of the documents whose sender answered the
    /// discovery request too, each once per server.
    fn finish(self) {
        let mut left_out: HashMap<IpAddr, u64> = HashMap::new();
        let mut listed = HashSet::new();
        for (from, document) in self.documents {
            if !self.answered.contains(&from) {
                self.discovery.dropped += 1;
                continue;
            }
            let missing = document
                .services_total
                .saturating_sub(document.services.len()) as u64;
            let counted = left_out.entry(document.ip).or_default();
            *counted = (*counted).max(missing);
            for mut service in document.services {
                service.server = document.ip;
                if self.discovery.services.len() >= MAX_SERVICES {
                    self.discovery.dropped += 1;
                    continue;
                }
                if listed.insert((document.ip, service.id.clone())) {
                    self.discovery.services.push(service);
                }
            }
        }
        self.discovery.services_left_out = left_out.values().fold(0, |a, &b| a.saturating_add(b));
    }

    /// Records one answer; true when it was a valid discovery answer.
    fn take(&mut self, reply: &[u8], from: SocketAddr) -> bool {
        if self.options.services_request.is_some()
            && reply.first() == Some(&b'{')
            && self.take_services(reply, from)
        {
            return false;
        }
        let valid = self.take_discovery(reply, from);
        if valid {
            self.answered.insert(from);
        }
        valid
    }

    /// Records a discovery answer; true when it was a valid one.
    fn take_discovery(&mut self, reply: &[u8], from: SocketAddr) -> bool {
        match parse_reply(self.options.response_prefix.as_bytes(), reply) {
            Ok(found) => {
                if !self.seen.contains(&(found.ip, found.service_port)) {
                    let from_here = self.per_source.entry(from.ip()).or_default();
                    let servers = &mut self.discovery.servers;
                    if servers.len() >= MAX_SERVERS || *from_here >= MAX_PER_SOURCE {
                        self.discovery.dropped += 1;
                        return true;
                    }
                    *from_here += 1;
                    self.seen.insert((found.ip, found.service_port));
                    servers.push(Server {
                        ip: found.ip,
                        port: found.service_port,
                        from,
                        rtt: self.start.elapsed(),
                        reply: String::from_utf8_lossy(reply).into_owned(),
                    });
                }
                true
            }
            Err(reason) => {
                if self.discovery.malformed.len() >= MAX_MALFORMED {
                    self.discovery.dropped += 1;
                    return false;
                }
                let shown = &reply[..reply.len().min(80)];
                self.discovery.malformed.push(Malformed {
                    from,
                    reason: reason.to_string(),
                    reply: String::from_utf8_lossy(shown).into_owned(),
                });
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn controls_are_escaped_and_printable_text_kept() {
        assert_eq!(
            escape_controls("a\u{1b}[31mb\r\n\u{7}\u{7f}\u{9b}\t"),
            "a\\u{1b}[31mb\\r\\n\\u{7}\\u{7f}\\u{9b}\\t"
        );
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(
            escape_controls("Café a.b\\c \"q\" 日本"),
            "Café a.b\\c \"q\" 日本"
        );
    }
}
