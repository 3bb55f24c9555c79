//! The actors: a supervisor that owns the lifecycle, and its children.

mod config;
mod listener;
mod supervisor;
mod timer;

pub(crate) use config::ConfigActor;
pub(crate) use listener::{ListenerActor, StopListener};
pub(crate) use supervisor::SupervisorActor;
pub(crate) use timer::TimerActor;
