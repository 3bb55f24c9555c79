//! The endpoints, and the checks every request passes first: the Host
//! header (against DNS rebinding), and the bearer token for what changes
//! anything.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use actix::Addr;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use tokio::sync::oneshot;

use crate::actors::{Requested, SupervisorActor};
use crate::handle::Request;
use crate::services::{check_id, Put, Refused, Registration, SpecError};
use crate::status::Status;

/// The largest request body taken.
pub(crate) const MAX_BODY: usize = 64 << 10;

/// What the handlers share.
pub(crate) struct Api {
    pub(crate) supervisor: Addr<SupervisorActor>,
    /// The bearer token, if one is required.
    pub(crate) token: Option<String>,
    /// The Host header values accepted; empty: any.
    pub(crate) hosts: Vec<String>,
}

/// A refused or failed request, answered as `{"error": "..."}`, with the
/// `field` of the body at fault when there is one.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = match &self.field {
            Some(field) => json!({ "error": self.message, "field": field }),
            None => json!({ "error": self.message }),
        };
        HttpResponse::build(self.status).json(body)
    }
}

impl Api {
    /// Refuses a request with a Host header not allowed, or, when it
    /// `changes` anything, from a web page or without the token.
    fn admit(&self, req: &HttpRequest, changes: bool) -> Result<(), ApiError> {
        if !self.hosts.is_empty() {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                return Err(ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!("Host {host:?} is not served here; add it to http.allowed_hosts"),
                ));
            }
        }
        // A web page may send a request to a loopback listener (one that
        // needs no preflight, such as an empty POST); a browser always says
        // where it comes from, a client of this API never needs to.
        if changes && req.headers().contains_key(header::ORIGIN) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "requests from web pages (with an Origin header) cannot change anything here; send them from a program",
            ));
        }
        if let (true, Some(token)) = (changes, &self.token) {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "));
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this endpoint needs `Authorization: Bearer <http.token>`",
                ));
            }
        }
        Ok(())
    }

    /// Asks the supervisor, and waits for its answer.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let gone = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
        self.supervisor
            .send(Requested(request(tx)))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    async fn status(&self) -> Result<Status, ApiError> {
        self.ask(Request::Status).await
    }
}

/// Compares without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The routes.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/livez", web::get().to(livez))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/v1/status", web::get().to(status))
        .route("/v1/reload", web::post().to(reload))
        .route("/v1/services", web::get().to(services))
        .route("/v1/services/{id}", web::put().to(register))
        .route("/v1/services/{id}", web::delete().to(deregister))
        .route("/v1/services/{id}/pass", web::put().to(pass))
        .default_service(web::to(not_found));
}

/// Anything else.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {} {}; see the README's HTTP section for the endpoints",
            req.method(),
            req.path().escape_debug()
        ),
    ))
}

/// 200 while the process runs.
async fn livez(api: web::Data<Api>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    api.admit(&req, false)?;
    Ok(HttpResponse::Ok().json(json!({ "status": "live" })))
}

/// 200 once the discovery sockets answer; 503 with the reason before, and
/// while a reload moves them.
async fn readyz(api: web::Data<Api>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    api.admit(&req, false)?;
    let status = api.status().await?;
    Ok(if status.ready {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        let reason = if status.addrs.is_empty() {
            "the discovery sockets are not bound yet"
        } else {
            "the discovery sockets are being moved by a reload"
        };
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not ready", "reason": reason }))
    })
}

/// The counters `status` shows, in the Prometheus text format.
async fn metrics(api: web::Data<Api>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    api.admit(&req, false)?;
    let status = api.status().await?;
    let body = super::metrics::encode_status(&status)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // Prometheus asks for OpenMetrics; everyone else gets the classic text.
    let openmetrics = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    Ok(if openmetrics {
        HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(body)
    } else {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(super::metrics::to_prometheus_text(&body))
    })
}

/// The document `discoveryd status --json` prints.
async fn status(api: web::Data<Api>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    api.admit(&req, false)?;
    Ok(HttpResponse::Ok().json(api.status().await?))
}

/// Reloads, and answers with the result, as `discoveryd reload` does.
async fn reload(api: web::Data<Api>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    api.admit(&req, true)?;
    let last = api.ask(Request::ReloadAndReport).await?;
    let code = match last.result {
        crate::status::ReloadResult::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    Ok(HttpResponse::build(code).json(last))
}

/// The registered services.
async fn services(api: web::Data<Api>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    api.admit(&req, false)?;
    let services = api.ask(Request::Services).await?;
    Ok(HttpResponse::Ok().json(json!({ "services": services })))
}

/// Registers or refreshes the service `id`: 201 when new, 200 otherwise;
/// it is in every advertiser (the json responder, mDNS, the registries)
/// before the answer leaves.
async fn register(
    api: web::Data<Api>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Admitted before a byte of the body is read.
    api.admit(&req, true)?;
    let body = read_body(body).await?;
    let caller = req
        .peer_addr()
        .map_or(IpAddr::V6(Ipv6Addr::LOCALHOST), |a| a.ip());
    let registration = Registration::parse(&id, &body, caller)?;
    let put = api
        .ask(|tx| Request::Register(registration, tx))
        .await?
        .map_err(|refused| match refused {
            Refused::Full { cap } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{cap} services are registered already (http.max_registrations); delete one, wait for one to expire, or raise http.max_registrations"),
            ),
            Refused::Case { registered } => ApiError::new(
                StatusCode::CONFLICT,
                format!("`{registered}` is registered, and ids are compared ignoring case (as DNS names are); use that id, or another"),
            ),
            Refused::OwnName { name } => ApiError::new(
                StatusCode::CONFLICT,
                format!("`{}` is this host's own mDNS instance name (mdns.instance, or the host name); use another id", name.escape_debug()),
            ),
        })?;
    let (code, result) = match put {
        Put::Created => (StatusCode::CREATED, "created"),
        Put::Updated => (StatusCode::OK, "updated"),
        Put::Refreshed => (StatusCode::OK, "refreshed"),
    };
    Ok(HttpResponse::build(code).json(json!({ "id": id.as_str(), "result": result })))
}

/// A heartbeat for the service `id`.
async fn pass(
    api: web::Data<Api>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    on_registered(&api, &req, id.into_inner(), Request::Pass, "passed").await
}

/// Removes the service `id` at once.
async fn deregister(
    api: web::Data<Api>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    on_registered(&api, &req, id.into_inner(), Request::Deregister, "deleted").await
}

/// Asks the supervisor `request` about the registered service `id`
/// (which it answers false for when it does not know it): 200 with
/// `result`, or 404.
async fn on_registered(
    api: &Api,
    req: &HttpRequest,
    id: String,
    request: fn(String, oneshot::Sender<bool>) -> Request,
    result: &str,
) -> Result<HttpResponse, ApiError> {
    api.admit(req, true)?;
    check_id(&id)?;
    if !api.ask(|tx| request(id.clone(), tx)).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no service `{id}` is registered (never, or it expired); register it with PUT /v1/services/{id}"),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "id": id, "result": result })))
}

/// How long a request body may take to arrive: a client that sends its
/// headers and then trickles (or never sends) its body does not hold a
/// connection for longer.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The request's body: at most [`MAX_BODY`] bytes (413 beyond), within
/// [`BODY_TIMEOUT`] (408 past it).
async fn read_body(body: web::Payload) -> Result<web::Bytes, ApiError> {
    let read = tokio::time::timeout(BODY_TIMEOUT, body.to_bytes_limited(MAX_BODY))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {}s; send it whole",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?;
    let body = read.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} KiB; send less TXT", MAX_BODY >> 10),
        )
    })?;
    body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {e}"),
        )
    })
}
