//! The config actor: watches the config file (see [`super::watch`] for
//! how: editors' save-by-rename, re-created directories and swapped
//! symlinks are all seen), debounces bursts of events, reloads on SIGHUP
//! too, and turns each reload into [`ConfigChanged`] or [`ConfigRejected`].
//!
//! It validates everything, the responder chain included, before the
//! supervisor sees a new configuration; it diffs against the configuration
//! the supervisor last applied.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, SpawnHandle};
use arc_swap::ArcSwap;
use discoveryd_api::Registry;
use notify::event::{AccessKind, AccessMode};
use notify::EventKind;
use tracing::{debug, info, warn};

use actix_rt::signal::unix::Signal;

use crate::actors::watch::FileWatch;
use crate::actors::{signals, SupervisorActor};
use crate::config::{Config, ConfigDiff, ConfigErrors, ConfigSource};
use crate::messages::{ConfigApplied, ConfigChanged, ConfigRejected, ConfigUnchanged};
use crate::responders::Snapshot;

/// How long the file must be quiet before it is read: editors write in
/// several steps (truncate, write, rename).
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Reload the configuration now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Reload {
    /// What asked for it, for the log.
    pub trigger: &'static str,
}

/// Something happened to the config file (sent from the watcher thread).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct FileTouched;

/// Watches and reloads the configuration.
pub(crate) struct ConfigActor {
    source: ConfigSource,
    registry: Arc<Registry>,
    applied: Arc<Config>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    supervisor: Addr<SupervisorActor>,
    watch: Option<FileWatch>,
    debounce: Option<SpawnHandle>,
    last_rejection: Option<String>,
    hangup: Option<Signal>,
}

impl ConfigActor {
    /// A config actor for `source`, whose configuration `applied` serves now.
    pub(crate) fn new(
        source: ConfigSource,
        registry: Arc<Registry>,
        applied: Arc<Config>,
        snapshot: Arc<ArcSwap<Snapshot>>,
        supervisor: Addr<SupervisorActor>,
        hangup: Signal,
    ) -> Self {
        Self {
            hangup: Some(hangup),
            source,
            registry,
            applied,
            snapshot,
            supervisor,
            watch: None,
            debounce: None,
            last_rejection: None,
        }
    }

    fn watch(&mut self, ctx: &mut Context<Self>) -> notify::Result<()> {
        let Some(path) = &self.source.path else {
            return Ok(());
        };
        let me = ctx.address();
        self.watch = Some(FileWatch::new(path, move |kind| {
            if changes_content(kind) {
                me.do_send(FileTouched);
            }
        })?);
        Ok(())
    }

    fn reload(&mut self, trigger: &'static str) {
        // The file may now be reached another way (a re-created directory,
        // a swapped symlink): watch what is there now.
        if let Some(watch) = &mut self.watch {
            for dir in watch.refresh() {
                debug!(dir = %dir.display(), "cannot watch (yet); watching the directories above for it");
            }
        }
        let config = match self.source.reload() {
            Ok(config) => config,
            Err(errors) => return self.reject(trigger, errors),
        };
        self.last_rejection = None;
        let diff = ConfigDiff::between(&self.applied, &config);
        if diff.is_empty() {
            debug!(trigger, "config unchanged");
            return self.supervisor.do_send(ConfigUnchanged { trigger });
        }
        let previous = self.snapshot.load();
        match Snapshot::build(&config, &self.registry, &self.source, Some(&previous)) {
            Ok(snapshot) => self.supervisor.do_send(ConfigChanged {
                diff,
                config: Arc::new(config),
                snapshot: Arc::new(snapshot),
            }),
            Err(errors) => self.reject(trigger, errors),
        }
    }

    /// Reports a rejected configuration, once per change: file events that
    /// find the same error again (editors touch files several times) are
    /// not logged again. SIGHUP always gets an answer.
    fn reject(&mut self, trigger: &'static str, errors: ConfigErrors) {
        let text = errors.to_string();
        if trigger != "SIGHUP" && self.last_rejection.as_deref() == Some(text.as_str()) {
            debug!(trigger, "config still invalid, with the same error");
            return;
        }
        self.last_rejection = Some(text);
        self.supervisor.do_send(ConfigRejected { errors });
    }
}

/// True for events that can change what the file says. Opening and
/// reading it (as every reload does) must not count, or each reload would
/// trigger the next.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
    }
}

impl Actor for ConfigActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.watch(ctx) {
            warn!(error = %e, "cannot watch the config file; reload with SIGHUP instead");
        }
        if let Some(hangup) = self.hangup.take() {
            signals::forward::<Self, _>(ctx, hangup, || Reload { trigger: "SIGHUP" });
        }
        if let Some(path) = &self.source.path {
            info!(path = %path.display(), "watching the config file for changes");
        }
    }
}

impl Handler<FileTouched> for ConfigActor {
    type Result = ();

    fn handle(&mut self, _: FileTouched, ctx: &mut Context<Self>) {
        if let Some(pending) = self.debounce.take() {
            ctx.cancel_future(pending);
        }
        self.debounce = Some(ctx.run_later(DEBOUNCE, |actor, _| {
            actor.debounce = None;
            actor.reload("file change");
        }));
    }
}

impl Handler<Reload> for ConfigActor {
    type Result = ();

    fn handle(&mut self, msg: Reload, _: &mut Context<Self>) {
        self.reload(msg.trigger);
    }
}

impl Handler<ConfigApplied> for ConfigActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigApplied, _: &mut Context<Self>) {
        self.applied = msg.config;
    }
}
