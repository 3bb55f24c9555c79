//! The actors: a supervisor that owns the lifecycle, and its children.

mod config;
mod listener;
mod signals;
mod supervisor;
mod timer;
mod watch;

pub(crate) use config::ConfigActor;
pub(crate) use listener::{Leave, ListenerActor, Plan, Sockets, StopListener};
pub(crate) use signals::Signals;
pub(crate) use supervisor::{Launch, SupervisorActor};
pub(crate) use timer::TimerActor;
