//! The router, its shared state, and the handlers of the JSON API and the pages.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use collector::{Health, PipelineMetrics};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use prometheus_client::registry::Registry;

use crate::auth::{self, CurrentSession, RateLimiter};
use crate::error::AppError;
use crate::pages::{self, Ctx};
use crate::panels::Panel;
use crate::routes::{ROUTES, RouteSpec};
use crate::server::ServerSettings;
use crate::services::Services;
use crate::stats::{Period, StatsReader};
use crate::users::{LoginRefusal, NewSession, Role, Session, UserStore};

/// What the dashboards read from.
#[derive(Debug)]
pub struct AppInputs {
    /// Every component's metrics, served on `/metrics`.
    pub registry: Arc<Registry>,
    pub health: Health,
    pub metrics: PipelineMetrics,
    /// A connection to the alert store (the pipeline writes through its own); silences are
    /// created through it.
    pub alerts: alerting::AlertStore,
    /// The emergency block list the analyzer feeds.
    pub blocklist: Arc<Mutex<analyzer::BlockList>>,
    /// Dates on pages are written in this zone (Europe/Paris).
    pub time_zone: jiff::tz::TimeZone,
    /// Accounts and sessions.
    pub users: UserStore,
    /// TLS, sessions, rate limits.
    pub settings: ServerSettings,
    /// The statistics stage's database, read side; `None` when the stage does not run.
    pub statistics: Option<StatsReader>,
    /// Panels (built-in and the operator's files), see [`crate::load_panels`].
    pub panels: Vec<Panel>,
    /// Incidents, requisitions, availability, series: each `None` until wired.
    pub services: Services,
}

/// The clock handlers read (injected in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shared, cheap-to-clone handler state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("settings", &self.0.settings).finish_non_exhaustive()
    }
}

struct Inner {
    registry: Arc<Registry>,
    health: Health,
    metrics: PipelineMetrics,
    alerts: Mutex<alerting::AlertStore>,
    blocklist: Arc<Mutex<analyzer::BlockList>>,
    time_zone: jiff::tz::TimeZone,
    users: Mutex<UserStore>,
    settings: ServerSettings,
    statistics: Option<Mutex<StatsReader>>,
    panels: Vec<Panel>,
    services: Services,
    limiter: RateLimiter,
    clock: Clock,
}

impl AppState {
    /// The state, on the system clock.
    pub fn new(inputs: AppInputs) -> AppState {
        AppState::with_clock(inputs, Arc::new(Timestamp::now))
    }

    /// The state, reading the time from `clock`.
    pub fn with_clock(inputs: AppInputs, clock: Clock) -> AppState {
        AppState(Arc::new(Inner {
            registry: inputs.registry,
            health: inputs.health,
            metrics: inputs.metrics,
            alerts: Mutex::new(inputs.alerts),
            blocklist: inputs.blocklist,
            time_zone: inputs.time_zone,
            users: Mutex::new(inputs.users),
            settings: inputs.settings,
            statistics: inputs.statistics.map(Mutex::new),
            panels: inputs.panels,
            services: inputs.services,
            limiter: RateLimiter::default(),
            clock,
        }))
    }

    pub(crate) fn settings(&self) -> &ServerSettings {
        &self.0.settings
    }

    pub(crate) fn limiter(&self) -> &RateLimiter {
        &self.0.limiter
    }

    pub(crate) fn now(&self) -> Timestamp {
        (self.0.clock)()
    }

    fn tz(&self) -> &jiff::tz::TimeZone {
        &self.0.time_zone
    }

    fn today(&self) -> Date {
        self.now().to_zoned_datetime(self.tz().clone()).date()
    }

    /// Runs `f` on the account store, on the blocking pool (SQLite, Argon2).
    async fn with_users<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UserStore) -> Result<T, crate::users::UserError> + Send + 'static,
    ) -> Result<T, AppError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut users = state.0.users.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut users)
        })
        .await?
        .map_err(AppError::from)
    }

    pub(crate) async fn session(&self, token: String) -> Result<Option<Session>, AppError> {
        let now = self.now();
        let idle = SignedDuration::try_from(self.0.settings.session_idle).unwrap_or(SignedDuration::from_hours(1));
        self.with_users(move |u| u.session(&token, now, idle)).await
    }

    pub(crate) async fn end_session(&self, token: String) -> Result<(), AppError> {
        self.with_users(move |u| u.delete_session(&token)).await
    }

    pub(crate) async fn login(
        &self,
        user: String,
        password: String,
        code: String,
        now: Timestamp,
    ) -> Result<Result<(NewSession, Role), LoginRefusal>, AppError> {
        let ttl = SignedDuration::try_from(self.0.settings.session_lifetime).unwrap_or(SignedDuration::from_hours(12));
        self.with_users(move |u| {
            let code = (!code.trim().is_empty()).then_some(code.as_str());
            match u.verify(&user, &password, code, now)? {
                Ok(found) => Ok(Ok((u.create_session(&found.name, now, ttl)?, found.role))),
                Err(refusal) => Ok(Err(refusal)),
            }
        })
        .await
    }

    /// Runs `f` on the alert store on the blocking pool.
    async fn with_alerts<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut alerting::AlertStore) -> Result<T, alerting::AlertError> + Send + 'static,
    ) -> Result<T, AppError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = state.0.alerts.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut store)
        })
        .await?
        .map_err(AppError::from)
    }

    async fn recent_alerts(&self, limit: usize) -> Result<Vec<alerting::Alert>, AppError> {
        self.with_alerts(move |s| s.alerts(alerting::AlertFilter { state: None, limit })).await
    }

    /// Runs `f` on the statistics, or `None` when the stage is not configured.
    async fn with_stats<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StatsReader) -> Result<T, crate::stats::StatsError> + Send + 'static,
    ) -> Result<Option<T>, AppError> {
        if self.0.statistics.is_none() {
            return Ok(None);
        }
        let state = self.clone();
        tokio::task::spawn_blocking(move || match &state.0.statistics {
            Some(s) => f(&s.lock().unwrap_or_else(|e| e.into_inner())).map(Some),
            None => Ok(None),
        })
        .await?
        .map_err(AppError::from)
    }

    /// Runs a (blocking) service call on the blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> crate::services::ServiceResult<T> + Send + 'static,
    ) -> Result<T, AppError> {
        tokio::task::spawn_blocking(f).await?.map_err(AppError::from)
    }

    fn ctx<'a>(&'a self, session: &'a Session, path: &'static str, range: &RangeQuery) -> Ctx<'a> {
        Ctx {
            session,
            path,
            now: self.now(),
            tz: self.tz(),
            refresh: self.0.settings.refresh.as_secs(),
            range: range.range(),
        }
    }
}

/// The router: every route of [`ROUTES`], each behind its access check, and the security
/// headers on every answer.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for spec in ROUTES {
        let guarded = handler(spec).layer(axum::middleware::from_fn_with_state((state.clone(), spec), auth::guard));
        router = router.route(spec.path, guarded);
    }
    let tls = state.settings().tls.is_some();
    router
        .fallback(|| async {
            (StatusCode::NOT_FOUND, Html(pages::error_page(StatusCode::NOT_FOUND, "Page introuvable.").into_string()))
        })
        .layer(axum::middleware::from_fn(move |req, next| crate::server::security_headers(tls, req, next)))
        .with_state(state)
}

/// The handler of each route of the table.
fn handler(spec: &RouteSpec) -> MethodRouter<AppState> {
    match (spec.method, spec.path) {
        ("GET", "/connexion") => get(auth::login_page),
        ("POST", "/connexion") => post(auth::login_submit),
        ("POST", "/deconnexion") => post(auth::logout),
        ("GET", "/static/vigie.css") => get(|| async { asset("text/css; charset=utf-8", pages::CSS) }),
        ("GET", "/static/vigie.js") => get(|| async { asset("text/javascript; charset=utf-8", pages::JS) }),
        ("GET", "/healthz") => get(|| async { "ok\n" }),
        ("GET", "/readyz") => get(readyz),
        ("GET", "/metrics") => get(metrics),
        ("GET", "/api/v1/blocklist") => get(blocklist),
        ("POST", "/alertes/{id}/prise-en-compte") => post(acknowledge),
        ("GET", "/notices/approve") => get(approve_link),
        ("POST", "/notices/approve") => post(approve_link_submit),
        ("GET", "/alerts/ack") => get(ack_link),
        ("POST", "/alerts/ack") => post(ack_link_submit),
        ("GET", "/api/openapi.json") => get(|| async { axum::Json(crate::routes::openapi()) }),
        ("GET", "/") => get(overview),
        ("GET", "/api/v1/overview") => get(api_overview),
        ("GET", "/api/status") => get(status),
        ("GET", "/disponibilite") => get(availability),
        ("GET", "/api/v1/availability") => get(api_availability),
        ("GET", "/securite") => get(security),
        ("GET", "/api/v1/security") => get(api_security),
        ("GET", "/saturation") => get(saturation),
        ("GET", "/api/v1/saturation") => get(api_saturation),
        ("GET", "/trafic") => get(traffic),
        ("GET", "/api/v1/traffic") => get(api_traffic),
        ("GET", "/trafic.csv") => get(traffic_csv),
        ("GET", "/incidents") => get(incidents),
        ("GET", "/api/v1/incidents") => get(api_incidents),
        ("POST", "/incidents/avis/{id}/approuver") => post(approve_notice),
        ("POST", "/alertes/silences") => post(add_silence),
        ("POST", "/alertes/silences/{id}/lever") => post(end_silence),
        ("GET", "/requisitions") => get(requisitions),
        ("POST", "/requisitions/recherche") => post(requisition_search),
        ("GET", "/requisitions/export/{id}") => get(requisition_export),
        ("GET", "/audit") => get(audit),
        ("GET", "/sante") => get(health_page),
        ("GET", "/api/v1/health") => get(api_health),
        (method, path) => panic!("route {method} {path} is in the table but has no handler"),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// The time range of a page (`?periode=24h`).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RangeQuery {
    periode: Option<String>,
}

/// The ranges the picker offers.
pub(crate) const RANGES: &[(&str, &str, i64)] = &[
    ("1h", "dernière heure", 1),
    ("24h", "dernières 24 heures", 24),
    ("7j", "7 derniers jours", 168),
    ("30j", "30 derniers jours", 720),
];

impl RangeQuery {
    pub(crate) fn range(&self) -> (&'static str, i64) {
        let key = self.periode.as_deref().unwrap_or("24h");
        RANGES.iter().find(|(k, _, _)| *k == key).map_or(("24h", 24), |(k, _, h)| (*k, *h))
    }

    fn since(&self, now: Timestamp) -> Timestamp {
        now.checked_sub(SignedDuration::from_hours(self.range().1)).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let tasks = state.0.health.snapshot();
    let down: Vec<&str> = tasks.iter().filter(|(_, up)| !**up).map(|(name, _)| name.as_str()).collect();
    if state.0.health.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else if tasks.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned()).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", down.join(", "))).into_response()
    }
}

fn metrics_text(state: &AppState) -> Result<String, AppError> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.0.registry).map_err(|_| AppError::Encode)?;
    Ok(text)
}

/// OpenMetrics for the clients that ask for it (Prometheus), the text format 0.0.4 for the others
/// (`promtool check metrics`, curl): see `exposition.rs`.
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<Response, AppError> {
    let text = metrics_text(&state)?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if crate::exposition::wants_openmetrics(accept) {
        Ok(([(header::CONTENT_TYPE, crate::exposition::OPENMETRICS)], text).into_response())
    } else {
        let text = crate::exposition::text_format(&text);
        Ok(([(header::CONTENT_TYPE, crate::exposition::TEXT)], text).into_response())
    }
}

/// The addresses blocked right now, one a line, each with its expiry and reason as a comment.
async fn blocklist(State(state): State<AppState>) -> Response {
    let text = state.0.blocklist.lock().unwrap_or_else(|e| e.into_inner()).render_text(state.now());
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

#[derive(Debug, serde::Serialize)]
struct Status {
    ready: bool,
    tasks: std::collections::BTreeMap<String, bool>,
    stages: pages::StageCounts,
    alerts_firing: usize,
    alerts_total_shown: usize,
}

async fn status(State(state): State<AppState>) -> Result<axum::Json<Status>, AppError> {
    let alerts = state.recent_alerts(500).await?;
    Ok(axum::Json(Status {
        ready: state.0.health.ready(),
        tasks: state.0.health.snapshot(),
        stages: pages::StageCounts::read(&state.0.metrics),
        alerts_firing: alerts.iter().filter(|a| a.state == alerting::AlertState::Firing).count(),
        alerts_total_shown: alerts.len(),
    }))
}

// ---- Vue d'ensemble ----

async fn overview_data(state: &AppState) -> Result<pages::Overview, AppError> {
    let now = state.now();
    let alerts = state.recent_alerts(200).await?;
    let today = state.today();
    let (up_now, month) = match state.0.services.availability.clone() {
        Some(svc) => {
            let (a, b) = (svc.clone(), svc);
            (Some(state.call(move || a.up_now(now)).await?), Some(state.call(move || b.month(today, now)).await?))
        }
        None => (None, None),
    };
    let logins_today = state
        .with_stats(move |s| {
            let rows = s.rows(Period::Day, today)?;
            Ok(rows.iter().filter(|r| r.kind == crate::stats::KIND_LOGIN).map(|r| r.count).sum::<u64>())
        })
        .await?;
    let incidents = match state.0.services.incidents.clone() {
        Some(svc) => Some(state.call(move || svc.incidents(now)).await?),
        None => None,
    };
    Ok(pages::Overview {
        stages: pages::StageCounts::read(&state.0.metrics),
        tasks: state.0.health.snapshot(),
        alerts,
        up_now,
        month,
        today,
        logins_today,
        incidents,
    })
}

async fn overview(
    State(state): State<AppState>,
    session: CurrentSession,
    Query(range): Query<RangeQuery>,
) -> Result<Html<String>, AppError> {
    let data = overview_data(&state).await?;
    Ok(Html(pages::overview(&state.ctx(&session, "/", &range), &data).into_string()))
}

async fn api_overview(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, AppError> {
    let d = overview_data(&state).await?;
    let firing: Vec<_> =
        d.alerts.iter().filter(|a| a.state == alerting::AlertState::Firing).map(pages::alert_json).collect();
    Ok(axum::Json(serde_json::json!({
        "ent_up": d.up_now.flatten(),
        "availability_configured": d.month.is_some(),
        "month_ratio": d.month.as_ref().map(|m| m.ratio),
        "today_ratio": d.month.as_ref().and_then(|m| m.days.iter().find(|x| x.day == d.today)).map(|x| x.ratio),
        "stages": d.stages,
        "alerts_firing": firing,
        "open_incidents": d.incidents.as_ref().map(|i| i.iter().filter(|x| x.resolved.is_none()).count()),
        "logins_today": d.logins_today,
    })))
}

// ---- Disponibilité ----

#[derive(Debug, Default, serde::Deserialize)]
struct MonthQuery {
    /// `2025-04` (`?mois=` on the pages, `?month=` in the API).
    #[serde(alias = "month")]
    mois: Option<String>,
}

fn month_day(q: &MonthQuery, today: Date) -> Date {
    q.mois.as_deref().and_then(|m| format!("{m}-01").parse::<Date>().ok()).unwrap_or(today)
}

async fn availability_data(
    state: &AppState,
    q: &MonthQuery,
) -> Result<Option<crate::services::MonthAvailability>, AppError> {
    let now = state.now();
    let day = month_day(q, state.today());
    match state.0.services.availability.clone() {
        Some(svc) => Ok(Some(state.call(move || svc.month(day, now)).await?)),
        None => Ok(None),
    }
}

async fn availability(
    State(state): State<AppState>,
    session: CurrentSession,
    Query(q): Query<MonthQuery>,
) -> Result<Html<String>, AppError> {
    let month = availability_data(&state, &q).await?;
    let ctx = state.ctx(&session, "/disponibilite", &RangeQuery::default());
    Ok(Html(pages::availability(&ctx, month_day(&q, state.today()), month.as_ref()).into_string()))
}

async fn api_availability(State(state): State<AppState>, Query(q): Query<MonthQuery>) -> Result<Response, AppError> {
    if let Some(m) = &q.mois
        && format!("{m}-01").parse::<Date>().is_err()
    {
        let error = format!("month={m}: write the month as YYYY-MM, e.g. month=2025-04");
        return Ok((StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": error }))).into_response());
    }
    let month = availability_data(&state, &q).await?;
    Ok(axum::Json(serde_json::json!({ "configured": month.is_some(), "month": month })).into_response())
}

// ---- Sécurité ----

async fn security_data(state: &AppState, range: &RangeQuery) -> Result<pages::SecurityData, AppError> {
    let now = state.now();
    let since = range.since(now);
    let alerts: Vec<_> = state.recent_alerts(2000).await?.into_iter().filter(|a| a.last_seen >= since).collect();
    let blocked: Vec<(std::net::IpAddr, analyzer::BlockEntry)> = {
        let list = state.0.blocklist.lock().unwrap_or_else(|e| e.into_inner());
        list.active(now).map(|(ip, e)| (ip, e.clone())).collect()
    };
    let tz = state.tz().clone();
    let (from, to) = (since.to_zoned_datetime(tz.clone()).date(), now.to_zoned_datetime(tz).date());
    let firewall =
        state.with_stats(move |s| Ok((s.denies_by_port(from, to, 15)?, s.top_offenders(from, to, 15)?))).await?;
    Ok(pages::SecurityData { alerts, blocked, firewall, since })
}

async fn security(
    State(state): State<AppState>,
    session: CurrentSession,
    Query(range): Query<RangeQuery>,
) -> Result<Html<String>, AppError> {
    let data = security_data(&state, &range).await?;
    Ok(Html(pages::security(&state.ctx(&session, "/securite", &range), &data).into_string()))
}

async fn api_security(
    State(state): State<AppState>,
    Query(range): Query<RangeQuery>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    let d = security_data(&state, &range).await?;
    let by_rule = pages::detections_by_rule(&d.alerts);
    Ok(axum::Json(serde_json::json!({
        "since": d.since,
        "detections_by_rule": by_rule.iter().map(|(rule, sev, n)| serde_json::json!({"rule": rule, "severity": sev, "count": n})).collect::<Vec<_>>(),
        "blocked": d.blocked.iter().map(|(ip, e)| serde_json::json!({"ip": ip, "expires": e.expires, "rule": e.rule, "detections": e.detections})).collect::<Vec<_>>(),
        "firewall_configured": d.firewall.is_some(),
        "denies_by_port": d.firewall.as_ref().map(|f| f.0.iter().map(|(p, n)| serde_json::json!({"port": p, "count": n})).collect::<Vec<_>>()),
        "top_offenders": d.firewall.as_ref().map(|f| f.1.iter().map(|(ip, c, asn, n)| serde_json::json!({"ip": ip, "country": c, "asn": asn, "count": n})).collect::<Vec<_>>()),
    })))
}

// ---- Saturation ----

async fn saturation_data(state: &AppState, range: &RangeQuery) -> Result<Vec<pages::PanelData>, AppError> {
    let now = state.now();
    let since = range.since(now);
    let metrics = collector::parse_prometheus_text(&metrics_text(state)?).ok();
    let mut out = Vec::new();
    for panel in state.0.panels.iter().filter(|p| p.page == "saturation" || p.page == "sante") {
        let data = match (&panel.series, &state.0.services.series) {
            (Some(name), Some(svc)) => {
                let (svc, name, combine) = (svc.clone(), name.clone(), panel.combine);
                let series = state.call(move || svc.series(&name, combine, since, now)).await?;
                pages::PanelValue::Series(series.map(|mut s| {
                    for p in &mut s.points {
                        p.1 *= panel.scale;
                    }
                    if panel.forecast && s.forecast.is_empty() {
                        s.forecast = crate::panels::linear_forecast(&s.points, panel.threshold);
                    }
                    s
                }))
            }
            (Some(_), None) => pages::PanelValue::NotConfigured,
            (None, _) => match (&panel.metric, &metrics) {
                (Some(m), Some(exp)) => pages::PanelValue::Current(crate::panels::current_values(exp, m)),
                _ => pages::PanelValue::NotConfigured,
            },
        };
        out.push(pages::PanelData { panel: panel.clone(), value: data });
    }
    Ok(out)
}

async fn saturation(
    State(state): State<AppState>,
    session: CurrentSession,
    Query(range): Query<RangeQuery>,
) -> Result<Html<String>, AppError> {
    let panels: Vec<_> =
        saturation_data(&state, &range).await?.into_iter().filter(|p| p.panel.page == "saturation").collect();
    Ok(Html(pages::saturation(&state.ctx(&session, "/saturation", &range), &panels).into_string()))
}

async fn api_saturation(
    State(state): State<AppState>,
    Query(range): Query<RangeQuery>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    let panels = saturation_data(&state, &range).await?;
    Ok(axum::Json(serde_json::json!({ "panels": panels.iter().map(pages::panel_json).collect::<Vec<_>>() })))
}

// ---- Trafic et statistiques ----

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TrafficQuery {
    pub(crate) periode: Option<String>,
    pub(crate) date: Option<String>,
    pub(crate) tri: Option<String>,
    pub(crate) ordre: Option<String>,
}

async fn traffic_data(state: &AppState, q: &TrafficQuery) -> Result<Option<pages::TrafficData>, AppError> {
    let period = q.periode.as_deref().and_then(Period::parse).unwrap_or(Period::Month);
    let day = q.date.as_deref().and_then(|d| d.parse::<Date>().ok()).unwrap_or_else(|| state.today());
    let to = day;
    let from = day.checked_sub(jiff::Span::new().days(29)).unwrap_or(day);
    let data = state
        .with_stats(move |s| Ok((s.rows(period, day)?, s.daily(crate::stats::KIND_LOGIN, "eleve", from, to)?)))
        .await?;
    Ok(data.map(|(rows, pupils)| pages::TrafficData::new(period, day, &rows, pupils, q)))
}

async fn traffic(
    State(state): State<AppState>,
    session: CurrentSession,
    Query(q): Query<TrafficQuery>,
) -> Result<Html<String>, AppError> {
    let data = traffic_data(&state, &q).await?;
    let ctx = state.ctx(&session, "/trafic", &RangeQuery::default());
    Ok(Html(pages::traffic(&ctx, data.as_ref()).into_string()))
}

async fn api_traffic(
    State(state): State<AppState>,
    Query(q): Query<TrafficQuery>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    let data = traffic_data(&state, &q).await?;
    Ok(axum::Json(serde_json::json!({ "configured": data.is_some(), "statistics": data })))
}

async fn traffic_csv(State(state): State<AppState>, Query(q): Query<TrafficQuery>) -> Result<Response, AppError> {
    let Some(data) = traffic_data(&state, &q).await? else {
        return Ok((StatusCode::NOT_FOUND, "Statistiques non configurées.\n").into_response());
    };
    let name = format!("vigie-statistiques-{}-{}.csv", data.period.as_str(), data.start);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        data.csv(),
    )
        .into_response())
}

// ---- Incidents et avis ----

async fn incidents_data(state: &AppState) -> Result<pages::IncidentsData, AppError> {
    let now = state.now();
    let alerts = state.recent_alerts(200).await?;
    let silences = state.with_alerts(move |s| s.silences(now)).await?;
    let (incidents, notices) = match state.0.services.incidents.clone() {
        Some(svc) => {
            let svc2 = svc.clone();
            (Some(state.call(move || svc.incidents(now)).await?), Some(state.call(move || svc2.notices(now)).await?))
        }
        None => (None, None),
    };
    Ok(pages::IncidentsData { alerts, silences, incidents, notices })
}

async fn incidents(State(state): State<AppState>, session: CurrentSession) -> Result<Html<String>, AppError> {
    let data = incidents_data(&state).await?;
    let ctx = state.ctx(&session, "/incidents", &RangeQuery::default());
    Ok(Html(pages::incidents(&ctx, &data).into_string()))
}

async fn api_incidents(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, AppError> {
    let d = incidents_data(&state).await?;
    Ok(axum::Json(serde_json::json!({
        "incidents_configured": d.incidents.is_some(),
        "incidents": d.incidents,
        "notices": d.notices,
        "alerts": d.alerts.iter().map(pages::alert_json).collect::<Vec<_>>(),
        "silences": d.silences.iter().map(|s| serde_json::json!({"id": s.id, "rule": s.matcher.rule, "key": s.matcher.key, "until": s.until, "by": s.created_by, "reason": s.reason})).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, serde::Deserialize)]
struct NoticeForm {
    /// The expected end, `datetime-local` in the page's zone.
    fin_prevue: String,
    /// The text the IT service adds to the directors' message.
    message: String,
}

async fn approve_notice(
    State(state): State<AppState>,
    session: CurrentSession,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<NoticeForm>,
) -> Result<Response, AppError> {
    let Some(svc) = state.0.services.incidents.clone() else {
        return Ok(not_configured("Le circuit des avis d’interruption"));
    };
    let end = form.fin_prevue.trim();
    let expected_end = if end.is_empty() { None } else { local_time(end, state.tz()) };
    if !end.is_empty() && expected_end.is_none() {
        return Ok(bad_form("La fin prévue n’est pas une date valide (exemple : 2025-04-07T14:30)."));
    }
    let (now, user) = (state.now(), session.user.name.clone());
    let message = form.message.trim().to_owned();
    let queued = state.call(move || svc.approve_notice(id, expected_end, &message, &user, now)).await?;
    tracing::info!(notice = id, user = %session.user.name, queued, "outage notice approved");
    Ok(Redirect::to("/incidents#avis").into_response())
}

async fn acknowledge(
    State(state): State<AppState>,
    session: CurrentSession,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let (now, user) = (state.now(), session.user.name.clone());
    let fresh = state.with_alerts(move |s| s.acknowledge(id, &user, now)).await?;
    tracing::info!(alert = id, user = %session.user.name, fresh, "alert acknowledged from the dashboard");
    Ok(Redirect::to("/incidents").into_response())
}

#[derive(Debug, serde::Deserialize)]
struct TokenForm {
    token: String,
}

/// The page behind an approval email's link: it asks for a click, because mail gateways
/// fetch links to scan them and a GET must not send 188 emails.
async fn approve_link(Query(form): Query<TokenForm>) -> Html<String> {
    Html(
        pages::confirm_link(
            "Valider l’avis aux directeurs d’école",
            "En validant, l’avis d’interruption part à chaque directeur d’école.",
            "/notices/approve",
            &form.token,
            "Valider et envoyer l’avis",
        )
        .into_string(),
    )
}

async fn approve_link_submit(
    State(state): State<AppState>,
    axum::Form(form): axum::Form<TokenForm>,
) -> Result<Response, AppError> {
    let Some(svc) = state.0.services.incidents.clone() else {
        return Ok(not_configured("Le circuit des avis d’interruption"));
    };
    let now = state.now();
    let (id, queued) = state.call(move || svc.approve_with_token(form.token.trim(), now)).await?;
    tracing::info!(notice = id, queued, "outage notice approved through its emailed link");
    let text = format!("L’avis n° {id} est validé : {queued} courriels partent aux directeurs d’école.");
    Ok(Html(pages::message_page("Avis validé", &text).into_string()).into_response())
}

/// The page behind an alert email's acknowledgement link (confirmed by a click, as above).
async fn ack_link(Query(form): Query<TokenForm>) -> Html<String> {
    Html(
        pages::confirm_link(
            "Prendre l’alerte en compte",
            "Les rappels s’arrêtent et l’alerte indique qui s’en occupe.",
            "/alerts/ack",
            &form.token,
            "Je prends en compte",
        )
        .into_string(),
    )
}

async fn ack_link_submit(
    State(state): State<AppState>,
    axum::Form(form): axum::Form<TokenForm>,
) -> Result<Response, AppError> {
    let now = state.now();
    let token = form.token.trim().to_owned();
    match state.with_alerts(move |s| s.acknowledge_with_token(&token, None, now)).await {
        Ok((id, fresh)) => {
            tracing::info!(alert = id, fresh, "alert acknowledged through its emailed link");
            let text = if fresh {
                format!("L’alerte n° {id} est prise en compte : les rappels sont arrêtés.")
            } else {
                format!("L’alerte n° {id} était déjà prise en compte.")
            };
            Ok(Html(pages::message_page("Alerte prise en compte", &text).into_string()).into_response())
        }
        Err(AppError::Alerts(alerting::AlertError::BadToken(why))) => {
            tracing::info!(%why, "acknowledgement link refused");
            Ok(bad_form("Ce lien n’est pas valide ou a expiré : prenez l’alerte en compte depuis la page Incidents."))
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, serde::Deserialize)]
struct SilenceForm {
    regle: Option<String>,
    cle: Option<String>,
    duree_heures: u32,
    motif: String,
}

async fn add_silence(
    State(state): State<AppState>,
    session: CurrentSession,
    axum::Form(form): axum::Form<SilenceForm>,
) -> Result<Response, AppError> {
    let rule = form.regle.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let key = form.cle.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if (rule.is_none() && key.is_none())
        || form.duree_heures == 0
        || form.duree_heures > 24 * 30
        || form.motif.trim().is_empty()
    {
        return Ok(bad_form("Indiquez une règle ou une clé, une durée de 1 à 720 heures et un motif."));
    }
    let now = state.now();
    let until = now.checked_add(SignedDuration::from_hours(i64::from(form.duree_heures))).unwrap_or(now);
    let (by, reason) = (session.user.name.clone(), form.motif.trim().to_owned());
    state.with_alerts(move |s| s.silence(&alerting::SilenceMatcher { rule, key }, until, &by, &reason, now)).await?;
    Ok(Redirect::to("/incidents#silences").into_response())
}

async fn end_silence(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, AppError> {
    let now = state.now();
    state.with_alerts(move |s| s.expire_silence(id, now)).await?;
    Ok(Redirect::to("/incidents#silences").into_response())
}

fn not_configured(what: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &format!("{what} n’est pas configuré sur ce serveur."))
                .into_string(),
        ),
    )
        .into_response()
}

fn bad_form(text: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(pages::error_page(StatusCode::BAD_REQUEST, text).into_string())).into_response()
}

// ---- Réquisitions ----

async fn requisitions(State(state): State<AppState>, session: CurrentSession) -> Html<String> {
    let ctx = state.ctx(&session, "/requisitions", &RangeQuery::default());
    let configured = state.0.services.requisitions.is_some();
    Html(pages::requisitions(&ctx, configured, None, None).into_string())
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct SearchForm {
    /// The requiring authority.
    pub(crate) autorite: String,
    /// The procedure (PV) number.
    pub(crate) procedure: String,
    /// The legal basis (`art. 60-1 CPP`…).
    pub(crate) fondement: String,
    /// The requisition's date (`2025-04-07`).
    pub(crate) date_requisition: String,
    pub(crate) debut: String,
    pub(crate) fin: String,
    /// An address or a CIDR range.
    pub(crate) ip: Option<String>,
    pub(crate) port: Option<String>,
    pub(crate) compte: Option<String>,
    /// A school's UAI.
    pub(crate) ecole: Option<String>,
}

fn filled(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl SearchForm {
    /// The query, or what the officer must correct (in French).
    fn query(&self, tz: &jiff::tz::TimeZone) -> Result<crate::services::RequisitionQuery, &'static str> {
        use crate::services::SearchTarget;
        let (authority, procedure_number) = (self.autorite.trim(), self.procedure.trim());
        if authority.is_empty() || procedure_number.is_empty() || self.fondement.trim().is_empty() {
            return Err("L’autorité requérante, le numéro de procédure et le fondement juridique sont obligatoires.");
        }
        let date: Date = self.date_requisition.trim().parse().map_err(|_| "Indiquez la date de la réquisition.")?;
        let (Some(from), Some(to)) = (local_time(&self.debut, tz), local_time(&self.fin, tz)) else {
            return Err("Indiquez le début et la fin de la période recherchée.");
        };
        if from >= to {
            return Err("La fin de la période doit suivre son début.");
        }
        let port = match filled(&self.port) {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| "Le port source est un nombre de 1 à 65535.")?),
        };
        let targets = [filled(&self.ip), filled(&self.compte), filled(&self.ecole)];
        if targets.iter().flatten().count() != 1 {
            return Err(
                "Recherchez une seule chose à la fois : une adresse IP (ou une plage), un compte ou une école.",
            );
        }
        let target = match targets {
            [Some(ip), _, _] if ip.contains('/') => {
                if port.is_some() {
                    return Err("Un port source ne s’indique qu’avec une adresse IP, pas avec une plage.");
                }
                if ip.parse::<ipnet::IpNet>().is_err() {
                    return Err("La plage d’adresses n’est pas valide (exemple : 203.0.113.0/24).");
                }
                SearchTarget::Network(ip.to_owned())
            }
            [Some(ip), _, _] => SearchTarget::Ip(
                ip.parse().map_err(|_| "L’adresse IP n’est pas valide (exemple : 203.0.113.9 ou 2001:db8::1).")?,
                port,
            ),
            [None, Some(user), _] => SearchTarget::User(user.to_owned()),
            [None, None, Some(uai)] => SearchTarget::School(uai.to_ascii_uppercase()),
            [None, None, None] => unreachable!("exactly one target was checked above"),
        };
        if port.is_some() && !matches!(target, SearchTarget::Ip(..)) {
            return Err("Un port source ne s’indique qu’avec une adresse IP.");
        }
        Ok(crate::services::RequisitionQuery {
            authority: authority.to_owned(),
            procedure_number: procedure_number.to_owned(),
            legal_basis: self.fondement.trim().to_owned(),
            date,
            from,
            to,
            target,
        })
    }
}

/// A local date-time from a `datetime-local` field, in the page's zone.
fn local_time(s: &str, tz: &jiff::tz::TimeZone) -> Option<Timestamp> {
    let dt: jiff::civil::DateTime = s.trim().parse().ok()?;
    dt.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp())
}

async fn requisition_search(
    State(state): State<AppState>,
    session: CurrentSession,
    axum::Form(form): axum::Form<SearchForm>,
) -> Result<Response, AppError> {
    let ctx = state.ctx(&session, "/requisitions", &RangeQuery::default());
    let Some(svc) = state.0.services.requisitions.clone() else {
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Html(pages::requisitions(&ctx, false, Some(&form), None).into_string()),
        )
            .into_response());
    };
    let now = state.now();
    let limit = state.settings().searches_per_minute;
    if !state.limiter().allow(&format!("search:{}", session.user.name), limit, SignedDuration::from_mins(1), now) {
        let page = pages::requisitions(
            &ctx,
            true,
            Some(&form),
            Some(Err("Trop de recherches en une minute : attendez avant de recommencer.")),
        );
        let mut r = (StatusCode::TOO_MANY_REQUESTS, Html(page.into_string())).into_response();
        r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("60"));
        return Ok(r);
    }
    let query = match form.query(state.tz()) {
        Ok(q) => q,
        Err(problem) => {
            let page = pages::requisitions(&ctx, true, Some(&form), Some(Err(problem)));
            return Ok((StatusCode::BAD_REQUEST, Html(page.into_string())).into_response());
        }
    };
    let operator = session.user.name.clone();
    tracing::info!(operator, procedure = %query.procedure_number, "requisition search");
    let result = match state.call(move || svc.search(&query, &operator, now)).await {
        Ok(r) => r,
        Err(AppError::Service(crate::services::ServiceError::Refused(why))) => {
            let page = pages::requisitions(&ctx, true, Some(&form), Some(Err(&why)));
            return Ok((StatusCode::BAD_REQUEST, Html(page.into_string())).into_response());
        }
        Err(e) => return Err(e),
    };
    Ok(Html(pages::requisitions(&ctx, true, Some(&form), Some(Ok(&result))).into_string()).into_response())
}

async fn requisition_export(
    State(state): State<AppState>,
    session: CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let Some(svc) = state.0.services.requisitions.clone() else {
        return Ok(not_configured("La recherche sur réquisition"));
    };
    let (now, operator) = (state.now(), session.user.name.clone());
    let export = state.call(move || svc.export(&id, &operator, now)).await?;
    let safe_name: String =
        export.file_name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    Ok((
        [
            (header::CONTENT_TYPE, export.content_type),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe_name}\"")),
        ],
        export.bytes,
    )
        .into_response())
}

async fn audit(State(state): State<AppState>, session: CurrentSession) -> Result<Html<String>, AppError> {
    let entries = match state.0.services.requisitions.clone() {
        Some(svc) => {
            let operator = session.user.name.clone();
            Some(state.call(move || svc.audit(&operator, 500)).await?)
        }
        None => None,
    };
    let ctx = state.ctx(&session, "/audit", &RangeQuery::default());
    Ok(Html(pages::audit(&ctx, entries.as_deref()).into_string()))
}

// ---- Santé de Vigie ----

async fn health_data(state: &AppState) -> Result<pages::HealthData, AppError> {
    let text = metrics_text(state)?;
    let samples = collector::parse_prometheus_text(&text).map(|e| e.samples).unwrap_or_default();
    Ok(pages::HealthData {
        stages: pages::StageCounts::read(&state.0.metrics),
        tasks: state.0.health.snapshot(),
        samples,
        panels: saturation_data(state, &RangeQuery::default())
            .await?
            .into_iter()
            .filter(|p| p.panel.page == "sante")
            .collect(),
    })
}

async fn health_page(State(state): State<AppState>, session: CurrentSession) -> Result<Html<String>, AppError> {
    let data = health_data(&state).await?;
    let ctx = state.ctx(&session, "/sante", &RangeQuery::default());
    Ok(Html(pages::health(&ctx, &data).into_string()))
}

async fn api_health(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, AppError> {
    let d = health_data(&state).await?;
    Ok(axum::Json(serde_json::json!({
        "ready": state.0.health.ready(),
        "tasks": d.tasks,
        "stages": d.stages,
        "samples": d.samples.iter().filter(|s| s.name.starts_with("vigie_")).map(|s| serde_json::json!({"name": s.name, "labels": s.labels, "value": s.value})).collect::<Vec<_>>(),
    })))
}
