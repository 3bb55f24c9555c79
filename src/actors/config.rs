//! The config watcher, a child of the supervisor: watches the config file
//! (see [`super::watch`] for how: editors' save-by-rename, re-created
//! directories and swapped symlinks are all seen), debounces bursts of
//! events, reloads on request (SIGHUP) too, and turns each reload into
//! [`ConfigChanged`], [`ConfigRejected`] or [`ConfigUnchanged`]. If the
//! watch itself fails, it stops, and its restart strategy brings it back.
//!
//! It validates everything, the responder chain included, before the
//! supervisor sees a new configuration; it diffs against the configuration
//! the supervisor last applied.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, Recipient, SpawnHandle,
};
use arc_swap::ArcSwap;
use discoveryd_api::Registry;
use notify::event::{AccessKind, AccessMode};
use notify::EventKind;
use tracing::{debug, info, warn};

use crate::actors::supervisor::{Child, ChildContext, Restart};
use crate::actors::watch::FileWatch;
use crate::actors::SupervisorActor;
use crate::config::{Config, ConfigDiff, ConfigErrors, ConfigSource};
use crate::messages::{ChildExited, ConfigChanged, ConfigRejected, ConfigUnchanged, Notice};
use crate::responders::Snapshot;
use crate::status::ReloadTrigger;

/// The config watcher, as the supervisor's child.
pub(crate) struct ConfigChild;

impl Child for ConfigChild {
    fn name(&self) -> &'static str {
        "config watcher"
    }

    /// The service answers without it (a reload request still rereads
    /// the file): it is restarted, and never stops the service.
    fn restart(&self) -> Restart {
        Restart::optional()
    }

    fn start(&mut self, ctx: &ChildContext) -> Recipient<Notice> {
        ConfigActor::new(ctx).start().recipient()
    }
}

/// How long the file must be quiet before it is read: editors write in
/// several steps (truncate, write, rename).
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Something happened to the config file (sent from the watcher thread).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct FileTouched;

/// The watch failed (sent from the watcher thread).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct WatchFailed(String);

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
    failed: Option<String>,
}

impl ConfigActor {
    /// A config actor for the service in `ctx`.
    fn new(ctx: &ChildContext) -> Self {
        Self {
            source: ctx.source.clone(),
            registry: Arc::clone(&ctx.registry),
            applied: Arc::clone(&ctx.config),
            snapshot: Arc::clone(&ctx.snapshot),
            supervisor: ctx.supervisor.clone(),
            watch: None,
            debounce: None,
            last_rejection: None,
            failed: None,
        }
    }

    fn watch(&mut self, ctx: &mut Context<Self>) -> notify::Result<()> {
        let Some(path) = &self.source.path else {
            return Ok(());
        };
        let me = ctx.address();
        self.watch = Some(FileWatch::new(path, move |event| match event {
            Ok(kind) if changes_content(kind) => me.do_send(FileTouched),
            Ok(_) => {}
            Err(e) => me.do_send(WatchFailed(e.to_string())),
        })?);
        Ok(())
    }

    fn reload(&mut self, trigger: ReloadTrigger) {
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
            debug!(%trigger, "config unchanged");
            return self.supervisor.do_send(ConfigUnchanged { trigger });
        }
        if let Err(errors) =
            crate::mdns::preflight(&config, self.applied.mdns.enabled, &self.source)
        {
            return self.reject(trigger, errors);
        }
        let previous = self.snapshot.load();
        match Snapshot::build(
            &config,
            &self.registry,
            &self.source,
            Some(&previous),
            &previous.services,
        ) {
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
    /// not logged again. A reload request always gets an answer.
    fn reject(&mut self, trigger: ReloadTrigger, errors: ConfigErrors) {
        let text = errors.to_string();
        let again = self.last_rejection.as_deref() == Some(text.as_str());
        if trigger == ReloadTrigger::FileChange && again {
            debug!(%trigger, "config still invalid, with the same error");
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
        if let Some(path) = &self.source.path {
            info!(path = %path.display(), "watching the config file for changes");
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.supervisor.do_send(ChildExited {
            child: "config watcher",
            error: self.failed.take(),
        });
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
            actor.reload(ReloadTrigger::FileChange);
        }));
    }
}

impl Handler<WatchFailed> for ConfigActor {
    type Result = ();

    fn handle(&mut self, WatchFailed(error): WatchFailed, ctx: &mut Context<Self>) {
        self.failed = Some(format!("the config file watch failed: {error}"));
        ctx.stop();
    }
}

impl Handler<Notice> for ConfigActor {
    type Result = ();

    fn handle(&mut self, notice: Notice, _: &mut Context<Self>) {
        match notice {
            Notice::Applied(config) => self.applied = config,
            Notice::Reload(trigger) => self.reload(trigger),
            Notice::Ready { .. } | Notice::Services(_) => {}
        }
    }
}
