//! The timer: tells the supervisor when `duration` has elapsed.

use actix::{Actor, Addr, AsyncContext, Context};

use crate::actors::SupervisorActor;
use crate::duration::HumanDuration;
use crate::messages::TimerExpired;

/// Sends [`TimerExpired`] once, `after` its start.
pub(crate) struct TimerActor {
    after: HumanDuration,
    supervisor: Addr<SupervisorActor>,
}

impl TimerActor {
    /// A timer for `after`.
    pub(crate) fn new(after: HumanDuration, supervisor: Addr<SupervisorActor>) -> Self {
        Self { after, supervisor }
    }
}

impl Actor for TimerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.after.get(), |timer, _| {
            timer
                .supervisor
                .do_send(TimerExpired { after: timer.after });
        });
    }
}
