//! What is shown: the web server — pages for the city's staff (in French), a JSON API,
//! Vigie's own Prometheus `/metrics`, and the `/healthz` and `/readyz` probes.
//!
//! Only this crate speaks HTTP to users. Handlers read from the stores and the metrics; they
//! never write pipeline state.

mod app;
mod error;
mod pages;

pub use app::{AppInputs, AppState, router, serve};
pub use error::AppError;
