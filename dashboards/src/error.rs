//! The one error type of the web handlers: details go to the log, never to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("alert store: {0}")]
    Alerts(#[from] alerting::AlertError),
    #[error("internal task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "Erreur interne : le détail est dans le journal de Vigie.").into_response()
    }
}
