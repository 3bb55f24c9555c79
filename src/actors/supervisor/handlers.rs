//! The messages the supervisor takes: from its listener incarnations, its
//! other children, and the service's handles. Each becomes an event for
//! the state machine, or a record of a reload.

use std::time::Instant;

use actix::{AsyncContext, Context, Handler, Message};
use tracing::{error, info, warn};

use super::children::Decision;
use super::machine::{Event, Exit};
use super::{plan_for, strategies, SupervisorActor};
use crate::error::Error;
use crate::handle::Request;
use crate::messages::{
    ChildExited, ConfigChanged, ConfigRejected, ConfigUnchanged, GaveUp, ListenerFailed,
    ListenerStarted, ListenerStopped, Notice, PortConflict, Shutdown, ShutdownReason, TimerExpired,
};
use crate::receiver::ListenerError;
use crate::status::{ReloadResult, ReloadTrigger};
use crate::supervision::BindFailure;

/// A request from a [`crate::handle::Handle`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Requested(pub(crate) Request);

impl Handler<Requested> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, Requested(request): Requested, ctx: &mut Context<Self>) {
        match request {
            Request::Status(reply) => drop(reply.send(self.status())),
            Request::Reload => self
                .children
                .notify(&Notice::Reload(ReloadTrigger::Request)),
            Request::ReloadAndReport(reply) => {
                self.reload_waiters.push(reply);
                self.children
                    .notify(&Notice::Reload(ReloadTrigger::Request));
            }
            Request::Register(registration, reply) => {
                let _ = reply.send(self.register(registration, ctx));
            }
            Request::Pass(id, reply) => drop(reply.send(self.pass(&id, ctx))),
            Request::Deregister(id, reply) => drop(reply.send(self.deregister(&id, ctx))),
            Request::Services(reply) => {
                drop(reply.send(self.services.table.list(Instant::now())));
            }
        }
    }
}

impl Handler<ListenerStarted> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ListenerStarted, ctx: &mut Context<Self>) {
        let addrs = msg.sockets.addrs.clone();
        if let Some(listener) = self.listeners.get_mut(&msg.incarnation) {
            listener.sockets = msg.sockets;
        }
        self.feed(
            Event::Bound {
                id: msg.incarnation,
                addrs,
            },
            ctx,
        );
    }
}

impl Handler<PortConflict> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: PortConflict, ctx: &mut Context<Self>) {
        let holder = msg.holder.as_ref().map(ToString::to_string);
        warn!(addr = %msg.addr, holder = holder.as_deref().unwrap_or("unknown"), attempt = msg.attempt, "port conflict");
        let exit = Exit::BindFailed {
            addr: msg.addr,
            failure: BindFailure::Busy(msg.holder),
        };
        self.listener_exited(msg.incarnation, exit, ctx);
    }
}

impl Handler<ListenerFailed> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ListenerFailed, ctx: &mut Context<Self>) {
        error!(error = %msg.error, "listener failed");
        let exit = match msg.error {
            ListenerError::Bind(e) => Exit::BindFailed {
                addr: e.addr,
                failure: BindFailure::of(&e),
            },
            error => Exit::Failed {
                error: error.to_string(),
            },
        };
        self.listener_exited(msg.incarnation, exit, ctx);
    }
}

impl Handler<ListenerStopped> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ListenerStopped, ctx: &mut Context<Self>) {
        self.listener_exited(msg.incarnation, Exit::Stopped, ctx);
    }
}

impl Handler<ConfigChanged> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigChanged, ctx: &mut Context<Self>) {
        if self.stop_reason.is_some() {
            return;
        }
        self.begin_reload();
        let plan = plan_for(&msg.config);
        let strategies = strategies(&msg.config);
        self.feed(
            Event::Reload {
                plan,
                strategies,
                reload: msg,
            },
            ctx,
        );
    }
}

impl Handler<ConfigRejected> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigRejected, _: &mut Context<Self>) {
        self.rejected(&msg.errors);
    }
}

impl Handler<ConfigUnchanged> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigUnchanged, _: &mut Context<Self>) {
        self.begin_reload();
        self.end_reload(
            ReloadResult::Unchanged,
            format!(
                "{}: the running config already matches the file",
                msg.trigger
            ),
        );
    }
}

impl Handler<TimerExpired> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: TimerExpired, ctx: &mut Context<Self>) {
        info!(after = %msg.after, "duration expired");
        self.observer.duration_expired(msg.after);
        self.stop(ShutdownReason::DurationElapsed, ctx);
    }
}

impl Handler<ChildExited> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        if self.stop_reason.is_some() {
            return;
        }
        if let Some(error) = &msg.error {
            warn!(child = msg.child, %error, "child failed");
        }
        let decision = self.children.exited(
            msg.child,
            msg.error.is_some(),
            Instant::now(),
            fastrand::f64(),
        );
        match decision {
            Decision::Done => {}
            Decision::Restart(after) => {
                let name = msg.child;
                ctx.run_later(after, move |sup, ctx| {
                    let children = sup.child_context(ctx);
                    sup.children.restart(name, &children);
                });
            }
            Decision::GiveUp {
                restarts,
                window,
                essential: true,
            } => ctx.notify(GaveUp {
                child: msg.child,
                restarts,
                window,
            }),
            Decision::GiveUp { restarts, .. } => {
                error!(
                    child = msg.child,
                    restarts, "child keeps failing; going on without it"
                );
            }
        }
    }
}

impl Handler<GaveUp> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: GaveUp, ctx: &mut Context<Self>) {
        error!(child = msg.child, restarts = msg.restarts, window = ?msg.window, "supervisor gave up");
        let GaveUp {
            child,
            restarts,
            window,
        } = msg;
        if let Some(done) = self.done.take() {
            let _ = done.send(Err(Error::GaveUp {
                child,
                restarts,
                window,
            }));
        }
        self.stop(ShutdownReason::Requested, ctx);
    }
}

impl Handler<Shutdown> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        self.stop(msg.reason, ctx);
    }
}
