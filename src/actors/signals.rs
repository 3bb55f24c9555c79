//! Unix signals as actor messages.

use actix::dev::ToEnvelope;
use actix::{Actor, AsyncContext, Handler, Message};
use actix_rt::signal::unix::{signal, SignalKind};
use tracing::warn;

/// Sends `message()` to the actor each time `kind` arrives. Registered
/// synchronously, so the signal's default action (often: terminate) is
/// replaced before this returns.
pub(crate) fn forward<A, M>(
    ctx: &mut A::Context,
    kind: SignalKind,
    name: &'static str,
    message: fn() -> M,
) where
    A: Actor + Handler<M>,
    A::Context: AsyncContext<A> + ToEnvelope<A, M>,
    M: Message<Result = ()> + Send + 'static,
{
    match signal(kind) {
        Ok(mut stream) => {
            let me = ctx.address();
            actix_rt::spawn(async move {
                while stream.recv().await.is_some() {
                    me.do_send(message());
                }
            });
        }
        Err(e) => warn!(signal = name, error = %e, "cannot handle the signal"),
    }
}
