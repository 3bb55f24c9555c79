//! The HTTP side as a child of the supervisor: actix-web, serving from
//! its own worker thread, restarted with backoff if it fails, and moved
//! when a reload changes `[http]`.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use actix::{Actor, ActorContext, Addr, Context, Handler, Recipient};
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use tracing::{info, warn};

use super::config::{check_token, Http};
use super::routes::{routes, Api, MAX_BODY};
use crate::actors::{Child, ChildContext, Restart, SupervisorActor};
use crate::config::Config;
use crate::lock;
use crate::messages::{ChildExited, Notice};
use crate::status::Status;

const NAME: &str = "http endpoint";

/// The most HTTP connections open at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 256;

/// The address the endpoint listens on now, shared between the child
/// (for the status document) and its actor.
type Bound = Arc<Mutex<Option<SocketAddr>>>;

/// The HTTP endpoint, as the supervisor's child.
#[derive(Default)]
pub(crate) struct HttpChild {
    bound: Bound,
}

impl Child for HttpChild {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The service answers without it: retried with backoff, never given up.
    fn restart(&self) -> Restart {
        Restart::persistent()
    }

    fn start(&mut self, ctx: &ChildContext) -> Recipient<Notice> {
        HttpActor {
            bound: Arc::clone(&self.bound),
            config: Arc::clone(&ctx.config),
            supervisor: ctx.supervisor.clone(),
            serving: None,
            failed: None,
        }
        .start()
        .recipient()
    }

    fn status(&self, status: &mut Status) {
        status.http = *lock(&self.bound);
    }
}

/// Runs the server the configuration asks for.
struct HttpActor {
    bound: Bound,
    config: Arc<Config>,
    supervisor: Addr<SupervisorActor>,
    /// The `[http]` table served now, and the server's handle.
    serving: Option<(Http, ServerHandle)>,
    failed: Option<String>,
}

impl HttpActor {
    fn sync(&mut self, ctx: &mut Context<Self>) {
        let wanted = &self.config.http;
        if self.serving.as_ref().map(|(http, _)| http) == Some(wanted) {
            return;
        }
        if let Some((old, handle)) = self.serving.take() {
            info!(listen = ?old.listen, "HTTP endpoint stopping");
            self.set_bound(None);
            // Graceful: requests in flight finish; the port is free after.
            actix_rt::spawn(async move { handle.stop(true).await });
        }
        if wanted.listen.is_none() {
            return;
        }
        match self.serve(wanted) {
            Ok((handle, addr)) => {
                info!(listen = %addr, "HTTP endpoint listening");
                self.set_bound(Some(addr));
                self.serving = Some((wanted.clone(), handle));
            }
            Err(e) => {
                warn!(error = %e, "HTTP endpoint failed");
                self.failed = Some(e);
                ctx.stop();
            }
        }
    }

    fn set_bound(&self, addr: Option<SocketAddr>) {
        *lock(&self.bound) = addr;
    }

    /// Starts the server; its handle, and the address it listens on (the
    /// port it got, for port 0).
    fn serve(&self, http: &Http) -> Result<(ServerHandle, SocketAddr), String> {
        let listen = http.listen.expect("serve is called with a listen address");
        let bind_error = |e: std::io::Error| {
            format!("cannot listen on http.listen {listen}: {e}; free the port, or choose another")
        };
        let listener = TcpListener::bind(listen).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let token = token(http)?;
        let hosts = if !http.allowed_hosts.is_empty() {
            http.allowed_hosts.clone()
        } else if addr.ip().is_loopback() {
            loopback_hosts(addr.port())
        } else {
            Vec::new()
        };
        let api = web::Data::new(Api {
            supervisor: self.supervisor.clone(),
            token,
            hosts,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(api.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .app_data(web::JsonConfig::default().limit(MAX_BODY))
                .configure(routes)
        })
        .workers(1)
        // Bounded: health checks, scrapes and registrations are a few
        // clients, and a flood of held connections must not take every
        // file descriptor the daemon has.
        .max_connections(MAX_CONNECTIONS)
        .backlog(MAX_CONNECTIONS as u32)
        .client_request_timeout(std::time::Duration::from_secs(5))
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(bind_error)?
        .run();
        let handle = server.handle();
        actix_rt::spawn(async move {
            if let Err(e) = server.await {
                warn!(error = %e, "HTTP endpoint stopped");
            }
        });
        Ok((handle, addr))
    }
}

/// The token `[http]` asks for: `token`, or the first line of `token_file`.
fn token(http: &Http) -> Result<Option<String>, String> {
    let Some(path) = &http.token_file else {
        return Ok(http.token.clone());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read http.token_file {}: {e}; check the path and its permissions",
            path.display()
        )
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    check_token(&token).map_err(|e| format!("http.token_file {}: {e}", path.display()))?;
    Ok(Some(token))
}

/// The Host values a loopback listener answers: its loopback names, with
/// and without the port.
fn loopback_hosts(port: u16) -> Vec<String> {
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .flat_map(|h| [(*h).to_owned(), format!("{h}:{port}")])
        .collect()
}

impl Actor for HttpActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sync(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.set_bound(None);
        if let Some((_, handle)) = self.serving.take() {
            actix_rt::spawn(async move { handle.stop(true).await });
        }
        self.supervisor.do_send(ChildExited {
            child: NAME,
            error: self.failed.take(),
        });
    }
}

impl Handler<Notice> for HttpActor {
    type Result = ();

    fn handle(&mut self, notice: Notice, ctx: &mut Context<Self>) {
        if let Notice::Applied(config) = notice {
            self.config = config;
            self.sync(ctx);
        }
    }
}
