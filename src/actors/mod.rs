//! The actors: a supervisor that owns the lifecycle, and its children:
//! listener incarnations, the config watcher and the timer.

mod config;
mod listener;
mod supervisor;
mod timer;
mod watch;

pub(crate) use config::ConfigChild;
pub(crate) use listener::{Leave, ListenerActor, Reports, StopListener};
pub(crate) use supervisor::{Child, ChildContext, Launch, Requested, Restart, SupervisorActor};
pub(crate) use timer::TimerChild;
