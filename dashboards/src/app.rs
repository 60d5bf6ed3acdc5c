//! The router, its shared state, and the server loop with graceful shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use collector::{Health, PipelineMetrics};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::error::AppError;
use crate::pages;

/// What the dashboards read from.
#[derive(Debug)]
pub struct AppInputs {
    /// Every component's metrics, served on `/metrics`.
    pub registry: Arc<Registry>,
    pub health: Health,
    pub metrics: PipelineMetrics,
    /// A read connection to the alert store (the pipeline writes through its own).
    pub alerts: alerting::AlertStore,
    /// The emergency block list the analyzer feeds.
    pub blocklist: Arc<Mutex<analyzer::BlockList>>,
    /// Dates on pages are written in this zone (Europe/Paris).
    pub time_zone: jiff::tz::TimeZone,
}

/// Shared, cheap-to-clone handler state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Arc<Registry>,
    health: Health,
    metrics: PipelineMetrics,
    alerts: Mutex<alerting::AlertStore>,
    blocklist: Arc<Mutex<analyzer::BlockList>>,
    time_zone: jiff::tz::TimeZone,
}

impl AppState {
    pub fn new(inputs: AppInputs) -> AppState {
        AppState(Arc::new(Inner {
            registry: inputs.registry,
            health: inputs.health,
            metrics: inputs.metrics,
            alerts: Mutex::new(inputs.alerts),
            blocklist: inputs.blocklist,
            time_zone: inputs.time_zone,
        }))
    }

    /// Reads the most recent alerts on the blocking pool (SQLite).
    async fn recent_alerts(&self, limit: usize) -> Result<Vec<alerting::Alert>, AppError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let store = state.0.alerts.lock().unwrap_or_else(|e| e.into_inner());
            store.alerts(alerting::AlertFilter { state: None, limit })
        })
        .await?
        .map_err(AppError::from)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/api/status", get(status))
        .route("/api/v1/blocklist", get(blocklist))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves until `cancel` fires, then lets in-flight requests finish (at most 5 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "web interface listening");
    let graceful = cancel.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move { graceful.cancelled().await });
    tokio::select! {
        result = server => result,
        () = async { cancel.cancelled().await; tokio::time::sleep(Duration::from_secs(5)).await } => {
            tracing::warn!("web requests still running after 5 s; closing them");
            Ok(())
        }
    }
}

async fn overview(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let alerts = state.recent_alerts(50).await?;
    let stages = pages::StageCounts::read(&state.0.metrics);
    let health = state.0.health.snapshot();
    let now = jiff::Timestamp::now();
    Ok(Html(pages::overview(&stages, &health, &alerts, now, &state.0.time_zone).into_string()))
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

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.0.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The addresses blocked right now, one a line, each with its expiry and reason as a comment.
async fn blocklist(State(state): State<AppState>) -> Response {
    let list = state.0.blocklist.lock().unwrap_or_else(|e| e.into_inner());
    let text = list.render_text(jiff::Timestamp::now());
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn state(dir: &std::path::Path) -> (AppState, Health) {
        let (state, health, _) = state_with_blocklist(dir);
        (state, health)
    }

    fn state_with_blocklist(dir: &std::path::Path) -> (AppState, Health, Arc<Mutex<analyzer::BlockList>>) {
        let mut registry = Registry::default();
        let metrics = PipelineMetrics::register(&mut registry);
        metrics.stage_out("parse", 12);
        let health = Health::default();
        let policy = alerting::AlertPolicy {
            resolve_after: Duration::from_secs(60),
            repeat_every: Duration::from_secs(3600),
            on_call: vec!["astreinte@ville.fr".into()],
            from: "vigie@ville.fr".into(),
            time_zone: jiff::tz::TimeZone::UTC,
        };
        let alerts = alerting::AlertStore::open(&dir.join("a.sqlite"), policy).unwrap();
        let blocklist = Arc::new(Mutex::new(analyzer::BlockList::new(analyzer::BlockPolicy::default(), Vec::new())));
        let state = AppState::new(AppInputs {
            registry: Arc::new(registry),
            health: health.clone(),
            metrics,
            alerts,
            blocklist: blocklist.clone(),
            time_zone: jiff::tz::TimeZone::UTC,
        });
        (state, health, blocklist)
    }

    async fn get(state: &AppState, uri: &str) -> (StatusCode, String) {
        let response = router(state.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_the_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let (state, health) = state(dir.path());
        health.expect("archive");
        let (code, body) = get(&state, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("archive"), "{body}");
        health.set("archive", true);
        assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn blocklist_lists_the_blocked_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _, blocklist) = state_with_blocklist(dir.path());
        let (code, body) = get(&state, "/api/v1/blocklist").await;
        assert_eq!(code, StatusCode::OK);
        assert!(!body.contains("203.0.113.9"));
        blocklist.lock().unwrap().add(&analyzer::Detection {
            id: "web.sqli:web:1".into(),
            rule: "web.sqli".into(),
            title: "Tentative d'injection SQL".into(),
            description: String::new(),
            severity: analyzer::Severity::Critical,
            cctp_class: analyzer::CctpClass::SecuriteMajeureCodePropre,
            mitre: None,
            timestamp: jiff::Timestamp::now(),
            source_ip: Some("203.0.113.9".parse().unwrap()),
            user_name: None,
            key: "source.ip=203.0.113.9".into(),
            evidence: "union select".into(),
            event_id: collector::EventId::at("web", 1),
        });
        let (_, body) = get(&state, "/api/v1/blocklist").await;
        let line = body.lines().find(|l| l.starts_with("203.0.113.9")).unwrap_or_else(|| panic!("{body}"));
        assert!(line.contains("web.sqli"), "{line}");
    }

    #[tokio::test]
    async fn metrics_and_overview_render() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = state(dir.path());
        let (code, body) = get(&state, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("vigie_stage_events_out_total{stage=\"parse\"} 12"), "{body}");
        let (code, page) = get(&state, "/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(page.contains("Vue d’ensemble"), "{page}");
        assert!(page.contains("Aucune alerte"), "{page}");
    }
}
