//! The library's `Service`, run in-process (no `discoveryd` subprocess):
//! what a program embedding discoveryd sees through `Observer` and
//! `Handle`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use discoveryd::{
    registry, ConfigSource, Handle, LastReload, Observer, Overrides, ReloadResult, Service,
};

use crate::util::{loopback, settled, Client, ConfigDir, DEADLINE};

/// What the observer heard, in order.
#[derive(Debug)]
enum Event {
    Ready(Vec<SocketAddr>),
    Reloading,
    Reloaded(LastReload),
    Stopping,
}

/// Passes each lifecycle event to the test thread.
struct Recorder(Mutex<Sender<Event>>);

impl Recorder {
    fn tell(&self, event: Event) {
        let _ = self.0.lock().unwrap().send(event);
    }
}

impl Observer for Recorder {
    fn ready(&self, addrs: &[SocketAddr]) {
        self.tell(Event::Ready(addrs.to_vec()));
    }
    fn reloading(&self) {
        self.tell(Event::Reloading);
    }
    fn reloaded(&self, result: &LastReload) {
        self.tell(Event::Reloaded(result.clone()));
    }
    fn stopping(&self) {
        self.tell(Event::Stopping);
    }
}

fn next(events: &Receiver<Event>, waiting_for: &str) -> Event {
    events
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|e| panic!("no {waiting_for} event within {DEADLINE:?}: {e}"))
}

/// The next reload's result, after its `reloading`.
fn next_reload(events: &Receiver<Event>) -> LastReload {
    match next(events, "reloading") {
        Event::Reloading => {}
        other => panic!("expected reloading, got {other:?}"),
    }
    match next(events, "reloaded") {
        Event::Reloaded(last) => last,
        other => panic!("expected reloaded, got {other:?}"),
    }
}

#[test]
fn a_service_runs_in_process_answers_reports_reloads_and_stops() {
    // A config file (reloads read it again) on loopback; `port` from the
    // overrides, as `--port 0` gives it: the kernel picks one.
    let config = ConfigDir::new(&loopback(""));
    let source = ConfigSource {
        path: Some(config.path()),
        overrides: Overrides {
            port: Some(0),
            ..Overrides::default()
        },
    };
    let loaded = source.load().expect("a valid config");
    let (handle, requests) = Handle::new();
    let (tell, events) = mpsc::channel();
    let service = Service::new(source, loaded, registry())
        .expect("a service")
        .observer(Arc::new(Recorder(Mutex::new(tell))))
        .requests(requests);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = std::thread::spawn(move || {
        actix_rt::System::new().block_on(service.run(async {
            let _ = stopped.await;
        }))
    });
    // The test thread awaits the handle's answers on a runtime of its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = || {
        rt.block_on(handle.status())
            .expect("a status while the service runs")
    };

    let addr = match next(&events, "ready") {
        Event::Ready(addrs) => {
            assert_eq!(addrs.len(), 1, "{addrs:?}");
            addrs[0]
        }
        other => panic!("expected ready, got {other:?}"),
    };
    assert_eq!(addr.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
    assert_ne!(addr.port(), 0, "the port the kernel gave, not 0");
    let before = status();
    assert!(before.ready, "{before:?}");
    assert_eq!(before.addrs, [addr]);
    assert_eq!(before.config, Some(config.path()));
    assert_eq!(before.counters.answered, 0, "{before:?}");

    // Answered on that address, and counted.
    Client::new().ask_until(addr.port(), b"DISCOVER_SERVER", "SERVER_IP:127.0.0.1");
    let after = settled(status, |s| s.counters.answered != 0);
    assert!(after.counters.answered >= 1, "{after:?}");
    assert_eq!(after.counters.rejected, 0, "{after:?}");

    // A reload through the handle, with nothing changed.
    handle.reload();
    let last = next_reload(&events);
    assert_eq!(last.result, ReloadResult::Unchanged, "{last:?}");
    assert!(last.detail.starts_with("reload request"), "{last:?}");
    let reloads = status().reloads;
    assert_eq!(
        (reloads.applied, reloads.unchanged, reloads.rejected),
        (0, 1, 0)
    );

    // An edit of the file: the watcher reloads it, on the same port.
    config.write(&loopback("message = \"IN_PROCESS_MESSAGE\""));
    let last = next_reload(&events);
    assert_eq!(last.result, ReloadResult::Applied, "{last:?}");
    assert_eq!(last.detail, "message", "{last:?}");
    Client::new().ask_until(addr.port(), b"IN_PROCESS_MESSAGE", "SERVER_IP:127.0.0.1");
    assert_eq!(status().addrs, [addr]);

    // Resolving the shutdown future stops it cleanly and lets the port go.
    stop.send(()).unwrap();
    match next(&events, "stopping") {
        Event::Stopping => {}
        other => panic!("expected stopping, got {other:?}"),
    }
    let outcome = running.join().expect("the service thread panicked");
    assert!(outcome.is_ok(), "{outcome:?}");
    UdpSocket::bind(addr).expect("the port is released once run returns");
    assert!(
        rt.block_on(handle.status()).is_none(),
        "a status from a service that is gone"
    );
}
