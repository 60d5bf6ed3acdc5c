//! What is shown: the web server — pages for the city's staff (in French), a JSON API with
//! its OpenAPI document, Vigie's own Prometheus `/metrics`, the `/healthz` and `/readyz`
//! probes — with local accounts, roles, sessions, CSRF tokens, rate limits and TLS; and the
//! statistics stage (CCTP 4.3.3) whose figures the traffic page shows.
//!
//! Only this crate speaks HTTP to users. Handlers read from the stores and the metrics; the
//! only writes are accounts and sessions, silences, and the actions the services expose.

mod app;
mod auth;
mod error;
mod exposition;
mod pages;
mod panels;
mod routes;
mod server;
mod services;
mod stats;
mod svg;
mod users;

pub use app::{AppInputs, AppState, Clock, router};
pub use auth::{LOGIN_CSRF_COOKIE, SESSION_COOKIE};
pub use error::AppError;
pub use panels::{Panel, PanelError, load_panels};
pub use routes::{Access, Kind, ROUTES, RouteSpec, openapi};
pub use server::{ClientAddr, ServerError, ServerSettings, TlsFiles, TlsListener, serve, tls_config};
pub use services::{
    AuditEntry, AvailabilityService, Combine, DayAvailability, Export, IncidentService, IncidentView,
    MonthAvailability, NoticeView, RequisitionQuery, RequisitionRecord, RequisitionResult, RequisitionService,
    SearchTarget, Series, SeriesService, ServiceError, ServiceResult, Services,
};
pub use stats::{Period, StatRow, Statistics, StatsError, StatsReader};
pub use users::{
    DemoAccount, LoginRefusal, MIN_PASSWORD_LEN, NewSession, Role, Session, User, UserError, UserStore, otpauth_uri,
    totp_code,
};

#[cfg(test)]
mod tests;
