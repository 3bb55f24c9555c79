//! The listener: binds the sockets of one incarnation and runs a receive
//! loop on each. It never decides its own fate: whatever ends it (a
//! conflict, a failure, a stop request) is reported to the supervisor
//! from `stopped`, after every socket is closed, so a retry can never
//! race its predecessor's cleanup.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, Recipient};
use tracing::warn;

use crate::messages::{
    Incarnation, ListenerFailed, ListenerStarted, ListenerStopped, Plan, PortConflict,
};
use crate::net::{
    bind_group, port_holder, retire, set_recv_buffer, steer, Beside, BindErrorKind, ProcessInfo,
    Sockets,
};
use crate::receiver::{ListenerError, Receiver, Shared};

/// Ask a listener to stop after answering what is queued.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct StopListener;

/// Ask a listener to stop without losing a datagram, because another
/// incarnation takes over. Its sockets at addresses the other one also
/// listens on (`stays`) share their SO_REUSEPORT groups with it: with
/// `steer_to`, those groups are steered to their first `steer_to` sockets
/// (the other's); without, the other's steering already passes this one
/// by. Then every socket is retired, so new datagrams go to the other's
/// sockets; it answers what it has queued, and stops.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Leave {
    /// The addresses the incarnation that stays listens on.
    pub(crate) stays: Vec<SocketAddr>,
    /// Steer the shared groups to this many first sockets.
    pub(crate) steer_to: Option<usize>,
}

/// A receive loop ended with an error (sent from its thread).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct WorkerFailed(ListenerError);

/// How an incarnation ended, reported once its sockets are closed.
enum Exit {
    Stopped,
    Conflict {
        addr: SocketAddr,
        holder: Option<ProcessInfo>,
    },
    Failed(ListenerError),
}

/// Where an incarnation reports how it started and ended: its supervisor.
pub(crate) struct Reports {
    started: Recipient<ListenerStarted>,
    stopped: Recipient<ListenerStopped>,
    conflict: Recipient<PortConflict>,
    failed: Recipient<ListenerFailed>,
}

impl Reports {
    /// Reports to the actor at `to`.
    pub(crate) fn to<A>(to: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<ListenerStarted>
            + Handler<ListenerStopped>
            + Handler<PortConflict>
            + Handler<ListenerFailed>,
    {
        Self {
            started: to.clone().recipient(),
            stopped: to.clone().recipient(),
            conflict: to.clone().recipient(),
            failed: to.clone().recipient(),
        }
    }
}

/// One incarnation of the listener.
pub(crate) struct ListenerActor {
    incarnation: Incarnation,
    plan: Plan,
    beside: Sockets,
    attempt: u32,
    shared: Shared,
    reports: Reports,
    receivers: Vec<Receiver>,
    exit: Exit,
}

impl ListenerActor {
    /// A listener for `plan`, bound `beside` the sockets of the incarnation
    /// it replaces (none for a fresh start); `attempt` counts binds
    /// retried so far.
    pub(crate) fn new(
        incarnation: Incarnation,
        plan: Plan,
        beside: Sockets,
        attempt: u32,
        shared: Shared,
        reports: Reports,
    ) -> Self {
        Self {
            incarnation,
            plan,
            beside,
            attempt,
            shared,
            reports,
            receivers: Vec::new(),
            exit: Exit::Stopped,
        }
    }

    fn fail(&mut self, exit: Exit, ctx: &mut Context<Self>) {
        if matches!(self.exit, Exit::Stopped) {
            self.exit = exit;
        }
        ctx.stop();
    }
}

impl Actor for ListenerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut sockets = Vec::with_capacity(self.plan.addrs.len() * self.plan.workers);
        for &addr in &self.plan.addrs {
            let beside = Beside {
                inodes: &self.beside.inodes,
                joining: if self.beside.addrs.contains(&addr) {
                    self.beside.workers
                } else {
                    0
                },
            };
            match bind_group(addr, self.plan.workers, beside) {
                Ok(group) => sockets.extend(group),
                Err(e) if e.kind == BindErrorKind::InUse => {
                    // `sockets` closes as this returns, before `stopped` reports.
                    return self.fail(
                        Exit::Conflict {
                            addr,
                            holder: port_holder(addr.port()),
                        },
                        ctx,
                    );
                }
                Err(e) => return self.fail(Exit::Failed(e.into()), ctx),
            }
        }
        let granted = sockets
            .iter()
            .map(|s| set_recv_buffer(s, self.plan.recv_buffer))
            .min()
            .unwrap_or(0);
        if granted < self.plan.recv_buffer {
            warn!(
                asked = self.plan.recv_buffer,
                granted,
                "the kernel gave a smaller receive buffer: floods may overflow it; raise net.core.rmem_max or grant CAP_NET_ADMIN"
            );
        }
        let inodes = sockets
            .iter()
            .filter_map(|s| nix::sys::stat::fstat(s).ok())
            .map(|st| st.st_ino)
            .collect();
        let mut bound = Vec::with_capacity(sockets.len());
        for socket in sockets {
            let local = socket.local_addr();
            let me = ctx.address();
            let receiver = Receiver::spawn(socket, self.shared.clone(), move |e| {
                me.do_send(WorkerFailed(e))
            });
            match local.and_then(|local| receiver.map(|r| (local, r))) {
                Ok((local, receiver)) => {
                    if !bound.contains(&local) {
                        bound.push(local);
                    }
                    self.receivers.push(receiver);
                }
                Err(error) => {
                    let addr = self.plan.addrs[bound.len().min(self.plan.addrs.len() - 1)];
                    return self.fail(Exit::Failed(ListenerError::Socket { addr, error }), ctx);
                }
            }
        }
        let leaders = self
            .receivers
            .chunks(self.plan.workers.max(1))
            .map(|group| Arc::downgrade(group[0].socket()))
            .collect();
        self.reports.started.do_send(ListenerStarted {
            incarnation: self.incarnation,
            sockets: Sockets {
                addrs: bound,
                workers: self.plan.workers,
                inodes,
                leaders,
            },
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Receiver::stop_all(&mut self.receivers);
        self.receivers.clear();
        let incarnation = self.incarnation;
        match std::mem::replace(&mut self.exit, Exit::Stopped) {
            Exit::Stopped => self
                .reports
                .stopped
                .do_send(ListenerStopped { incarnation }),
            Exit::Conflict { addr, holder } => self.reports.conflict.do_send(PortConflict {
                incarnation,
                addr,
                holder,
                attempt: self.attempt,
            }),
            Exit::Failed(error) => self
                .reports
                .failed
                .do_send(ListenerFailed { incarnation, error }),
        }
    }
}

impl Handler<StopListener> for ListenerActor {
    type Result = ();

    fn handle(&mut self, _: StopListener, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Leave> for ListenerActor {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        let groups = self.receivers.chunks(self.plan.workers.max(1));
        if let Some(first) = msg.steer_to {
            for group in groups.clone() {
                let socket = group[0].socket();
                if socket.local_addr().is_ok_and(|a| msg.stays.contains(&a)) {
                    let _ = steer(socket, 0, first);
                }
            }
        }
        // No steering points here any more: retire every socket, so that
        // neither the kernel's hashing (while closing sockets reshuffle
        // their group) nor a more specific address sends them anything.
        for receiver in groups.flatten() {
            if let Err(error) = retire(receiver.socket()) {
                warn!(%error, "cannot retire a socket being replaced; datagrams that reach it while it closes are lost");
            }
        }
        ctx.stop();
    }
}

impl Handler<WorkerFailed> for ListenerActor {
    type Result = ();

    fn handle(&mut self, WorkerFailed(error): WorkerFailed, ctx: &mut Context<Self>) {
        self.fail(Exit::Failed(error), ctx);
    }
}
