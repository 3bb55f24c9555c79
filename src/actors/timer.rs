//! The timer, a child of the supervisor: once the service answers, it
//! tells the supervisor when `duration` has elapsed.

use actix::{Actor, Addr, AsyncContext, Context, Handler, Recipient};
use std::sync::Arc;

use crate::actors::supervisor::{Child, ChildContext, Restart};
use crate::actors::SupervisorActor;
use crate::duration::HumanDuration;
use crate::handle::Observer;
use crate::messages::{Notice, TimerExpired};

/// The `duration` timer, as the supervisor's child.
pub(crate) struct TimerChild {
    after: HumanDuration,
}

impl TimerChild {
    /// A timer for `after`, counted from when the service answers.
    pub(crate) fn new(after: HumanDuration) -> Self {
        Self { after }
    }
}

impl Child for TimerChild {
    fn name(&self) -> &'static str {
        "timer"
    }

    fn restart(&self) -> Restart {
        Restart::Never
    }

    fn start(&mut self, ctx: &ChildContext) -> Recipient<Notice> {
        TimerActor {
            after: self.after,
            supervisor: ctx.supervisor.clone(),
            observer: Arc::clone(&ctx.observer),
            armed: false,
        }
        .start()
        .recipient()
    }
}

/// Sends [`TimerExpired`] once, `after` the service first answered.
struct TimerActor {
    after: HumanDuration,
    supervisor: Addr<SupervisorActor>,
    observer: Arc<dyn Observer>,
    armed: bool,
}

impl Actor for TimerActor {
    type Context = Context<Self>;
}

impl Handler<Notice> for TimerActor {
    type Result = ();

    fn handle(&mut self, notice: Notice, ctx: &mut Context<Self>) {
        if !matches!(notice, Notice::Ready { .. }) || std::mem::replace(&mut self.armed, true) {
            return;
        }
        self.observer.timer_set(self.after);
        ctx.run_later(self.after.get(), |timer, _| {
            timer
                .supervisor
                .do_send(TimerExpired { after: timer.after });
        });
    }
}
