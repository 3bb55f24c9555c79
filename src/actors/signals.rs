//! Unix signals as actor messages.
//!
//! The handlers are installed by [`Signals::install`] before the pidfile
//! and control socket exist: from the moment anyone can find the instance
//! (and `reload` it, or rotate its log), no signal can kill it. A signal
//! that arrives before the supervisor runs waits in its stream.

use std::io;

use actix::dev::ToEnvelope;
use actix::{Actor, AsyncContext, Handler, Message};
use actix_rt::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

/// The signals discoveryd handles, caught and waiting to be forwarded.
#[derive(Debug)]
pub(crate) struct Signals {
    /// SIGTERM: stop.
    pub(crate) terminate: Signal,
    /// SIGHUP: reload the config file.
    pub(crate) hangup: Signal,
    /// SIGUSR1: log a status snapshot.
    pub(crate) user1: Signal,
    /// SIGUSR2: reopen the log file.
    pub(crate) user2: Signal,
    /// SIGINT (Ctrl+C), through `ctrlc`.
    pub(crate) interrupt: mpsc::UnboundedReceiver<()>,
}

impl Signals {
    /// Catches the signals; call it inside the actix runtime.
    pub(crate) fn install() -> io::Result<Self> {
        let (tx, interrupt) = mpsc::unbounded_channel();
        // `set_handler` also replaces an inherited "ignore" (background
        // jobs of non-interactive shells): Ctrl+C must always stop us.
        ctrlc::set_handler(move || {
            let _ = tx.send(());
        })
        .map_err(io::Error::other)?;
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            user1: signal(SignalKind::user_defined1())?,
            user2: signal(SignalKind::user_defined2())?,
            interrupt,
        })
    }
}

/// Something that yields each time its signal arrives.
pub(crate) trait Arrivals: Send + 'static {
    /// Waits for the next arrival; `None` when none can come any more.
    fn arrived(&mut self) -> impl std::future::Future<Output = Option<()>> + Send;
}

impl Arrivals for Signal {
    async fn arrived(&mut self) -> Option<()> {
        self.recv().await
    }
}

impl Arrivals for mpsc::UnboundedReceiver<()> {
    async fn arrived(&mut self) -> Option<()> {
        self.recv().await
    }
}

/// Sends `message()` to the actor each time `arrivals` yields.
pub(crate) fn forward<A, M>(ctx: &mut A::Context, mut arrivals: impl Arrivals, message: fn() -> M)
where
    A: Actor + Handler<M>,
    A::Context: AsyncContext<A> + ToEnvelope<A, M>,
    M: Message<Result = ()> + Send + 'static,
{
    let me = ctx.address();
    actix_rt::spawn(async move {
        while arrivals.arrived().await.is_some() {
            me.do_send(message());
        }
    });
}
