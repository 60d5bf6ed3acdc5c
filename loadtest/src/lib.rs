//! `vigie loadtest`: virtual users following a scenario file (log in, open the class blog,
//! post an article, log out) against the ENT, to check it holds far more than the 500
//! simultaneous connections the contract (CCTP 4.4) asks for.
//!
//! A [`Scenario`] (YAML) is compiled once; a [`Run`] starts virtual users under a [`Profile`]
//! — constant users, ramp-up, or constant arrival rate — each with its own kept-alive
//! connection (HTTP/1.1 or HTTP/2, TLS by rustls) and cookie jar; the [`Report`] gives
//! requests, errors by [`ErrorKind`], per-step latency percentiles and throughput.
//! An [`AllowList`] and a default rate cap keep it from being pointed at someone else.

mod client;
mod cookies;
mod extract;
mod h1;
mod run;
mod safety;
mod scenario;
mod stats;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use client::{ClientSettings, HttpVersion, Origin, TlsSetupError};
pub use cookies::CookieJar;
pub use run::{Profile, Run, RunError, RunOptions};
pub use safety::{AllowList, DEFAULT_MAX_RATE, LoadtestConfig, raise_open_files_limit};
pub use scenario::{Scenario, ScenarioError, parse_duration};
pub use stats::{ErrorKind, Iterations, Latency, LiveCounts, Recorder, Report, StepReport};
