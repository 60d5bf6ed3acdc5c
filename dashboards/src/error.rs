//! The one error type of the web handlers: details go to the log, never to the client, except
//! a service's refusal, written for the user.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("alert store: {0}")]
    Alerts(#[from] alerting::AlertError),
    #[error("account store: {0}")]
    Users(#[from] crate::users::UserError),
    #[error("statistics: {0}")]
    Stats(#[from] crate::stats::StatsError),
    #[error("service: {0}")]
    Service(#[from] crate::services::ServiceError),
    #[error("cannot encode the metrics")]
    Encode,
    #[error("internal task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Service(crate::services::ServiceError::Refused(why)) = &self {
            tracing::info!(refused = %why, "request refused");
            let page = crate::pages::error_page(StatusCode::BAD_REQUEST, why);
            return (StatusCode::BAD_REQUEST, Html(page.into_string())).into_response();
        }
        tracing::error!(error = %self, "request failed");
        let page = crate::pages::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Erreur interne : le détail est dans le journal de Vigie.",
        );
        (StatusCode::INTERNAL_SERVER_ERROR, Html(page.into_string())).into_response()
    }
}
