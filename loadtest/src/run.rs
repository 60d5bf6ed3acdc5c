//! Running a scenario: virtual users (each with its connection, cookie jar and extracted
//! values) under a load profile, until the duration or iteration count is reached or the run
//! is cancelled (Ctrl-C), then the report.
//!
//! Profiles:
//! - constant users (closed model): N users loop over the scenario;
//! - ramp-up: the same, user `i` starting at `i × ramp / N`;
//! - constant arrival rate (open model): an iteration starts every `1/rate` s whatever the
//!   server's latency, on one of a fixed pool of users; an iteration due while every user is
//!   busy is *dropped* and counted, one started more than 25 ms after its time is *late*.
//!   A slow server therefore shows as drops, not as a silently lower rate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{ClientSettings, Connection, Origin};
use crate::cookies::CookieJar;
use crate::safety::{AllowList, RateLimiter};
use crate::scenario::{Body, Scenario, Step};
use crate::stats::{ErrorKind, Recorder, Report, RunMeta};

/// How many virtual users run, and when.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// `users` users from the start.
    Constant {
        /// Virtual users.
        users: u32,
    },
    /// Users start one after the other over `ramp`, then stay.
    RampUp {
        /// Virtual users at the end of the ramp.
        users: u32,
        /// Time to start them all.
        ramp: Duration,
    },
    /// Open model: `rate` iterations per second on at most `max_users` users.
    ArrivalRate {
        /// Iterations started per second.
        rate: f64,
        /// Users available to run them (an iteration finding none free is dropped).
        max_users: u32,
    },
}

impl Profile {
    /// The most users running at once.
    pub fn max_users(&self) -> u32 {
        match self {
            Profile::Constant { users } | Profile::RampUp { users, .. } => *users,
            Profile::ArrivalRate { max_users, .. } => *max_users,
        }
    }

    fn describe(&self) -> String {
        match self {
            Profile::Constant { users } => format!("{users} utilisateurs constants"),
            Profile::RampUp { users, ramp } => {
                format!("montée progressive jusqu'à {users} utilisateurs en {} s", ramp.as_secs_f64())
            }
            Profile::ArrivalRate { rate, max_users } => {
                format!("arrivées à {rate} parcours/s (au plus {max_users} utilisateurs)")
            }
        }
    }
}

/// Everything a run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Who runs, and when.
    pub profile: Profile,
    /// Stop after this long (required for the arrival-rate profile).
    pub duration: Option<Duration>,
    /// Closed profiles: each user stops after this many iterations.
    pub iterations_per_user: Option<u64>,
    /// A request without a complete response after this long is a `timeout`.
    pub timeout: Duration,
    /// Requests per second at most, all users together; `None`: no cap.
    pub max_rate: Option<f64>,
    /// Which origins may be targeted.
    pub allow: AllowList,
    /// TLS and HTTP version.
    pub client: ClientSettings,
}

/// What a run may refuse before sending anything.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario targets an origin outside the allow-list.
    #[error("{0}")]
    Refused(String),
    /// The options do not make a run.
    #[error("{0}")]
    Options(String),
}

/// The shared state of one run.
#[derive(Debug)]
struct Shared {
    scenario: Scenario,
    options: RunOptions,
    recorder: Arc<Recorder>,
    limiter: Option<RateLimiter>,
    /// Cancelled at the deadline or on Ctrl-C.
    stop: CancellationToken,
    deadline: Option<Instant>,
}

/// A virtual user: its connection, its cookies, the values its steps extracted.
#[derive(Debug)]
struct User {
    index: usize,
    id: String,
    iteration: u64,
    iteration_text: String,
    jar: CookieJar,
    connection: Option<Connection>,
    extracted: Vec<(String, String)>,
    rng: u64,
}

/// How an iteration ended.
enum Outcome {
    Completed,
    Failed,
    Interrupted,
}

/// A run that has been checked and can start.
#[derive(Debug)]
pub struct Run {
    shared: Arc<Shared>,
}

impl Run {
    /// Checks the scenario against the allow-list and the options, before anything is sent.
    pub fn new(scenario: Scenario, options: RunOptions) -> Result<Run, RunError> {
        options.allow.check(&scenario.literal_origins()).map_err(RunError::Refused)?;
        if options.profile.max_users() == 0 {
            return Err(RunError::Options("the number of users must be at least 1".into()));
        }
        match &options.profile {
            Profile::ArrivalRate { rate, .. } => {
                if !(rate.is_finite() && *rate > 0.0) {
                    return Err(RunError::Options(format!(
                        "--rate {rate}: give a positive number of iterations per second"
                    )));
                }
                if options.duration.is_none() {
                    return Err(RunError::Options("the arrival-rate profile needs --duration".into()));
                }
            }
            _ => {
                if options.duration.is_none() && options.iterations_per_user.is_none() {
                    return Err(RunError::Options(
                        "give --duration or --iterations, or the run would never end".into(),
                    ));
                }
            }
        }
        if let Some(r) = options.max_rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(RunError::Options(format!("--max-rate {r}: give a positive number, or `none`")));
        }
        let recorder = Arc::new(Recorder::new(&scenario.step_names()));
        let limiter = options.max_rate.map(RateLimiter::new);
        Ok(Run {
            shared: Arc::new(Shared {
                scenario,
                options,
                recorder,
                limiter,
                stop: CancellationToken::new(),
                deadline: None,
            }),
        })
    }

    /// The live counters, for a progress display.
    pub fn recorder(&self) -> Arc<Recorder> {
        self.shared.recorder.clone()
    }

    /// Runs until the duration, the iteration count, or `cancel` (Ctrl-C: the report says it
    /// is partial). In-flight requests are abandoned at the end and not counted.
    pub async fn run(self, cancel: CancellationToken) -> Report {
        let started = jiff::Timestamp::now();
        let start = Instant::now();
        let mut shared = Arc::try_unwrap(self.shared).expect("the run is not shared before it starts");
        shared.deadline = shared.options.duration.map(|d| start + d);
        let shared = Arc::new(shared);
        let stop = shared.stop.clone();
        let interrupted = {
            let stop = stop.clone();
            let deadline = shared.deadline;
            tokio::spawn(async move {
                let by_deadline = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                let was_cancelled = tokio::select! {
                    () = cancel.cancelled() => true,
                    () = by_deadline => false,
                    () = stop.cancelled() => false,
                };
                stop.cancel();
                was_cancelled
            })
        };
        let tracker = TaskTracker::new();
        match shared.options.profile.clone() {
            Profile::Constant { users } => spawn_closed(&shared, &tracker, users, Duration::ZERO),
            Profile::RampUp { users, ramp } => spawn_closed(&shared, &tracker, users, ramp),
            Profile::ArrivalRate { rate, max_users } => {
                let shared = shared.clone();
                let inner = tracker.clone();
                tracker.spawn(async move { open_model(shared, inner, rate, max_users).await });
            }
        }
        tracker.close();
        tracker.wait().await;
        let elapsed = start.elapsed();
        // Every user finished by itself (iteration counts): end the watcher.
        stop.cancel();
        let interrupted = interrupted.await.unwrap_or(false);
        shared.recorder.report(RunMeta {
            scenario: shared.scenario.name.clone(),
            profile: shared.options.profile.describe(),
            started,
            elapsed,
            interrupted,
            max_users: u64::from(shared.options.profile.max_users()),
        })
    }
}

fn new_user(index: usize) -> User {
    User {
        index,
        id: (index + 1).to_string(),
        iteration: 0,
        iteration_text: String::new(),
        jar: CookieJar::new(),
        connection: None,
        extracted: Vec::new(),
        // splitmix64 seed: distinct, reproducible think times per user.
        rng: (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    }
}

fn spawn_closed(shared: &Arc<Shared>, tracker: &TaskTracker, users: u32, ramp: Duration) {
    for index in 0..users as usize {
        let shared = shared.clone();
        let delay = ramp.mul_f64(index as f64 / f64::from(users));
        tracker.spawn(async move {
            if !delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.stop.cancelled() => return,
                }
            }
            let recorder = &shared.recorder;
            recorder.active_users.fetch_add(1, Ordering::Relaxed);
            let mut user = new_user(index);
            loop {
                if shared.stop.is_cancelled() || shared.options.iterations_per_user.is_some_and(|n| user.iteration >= n)
                {
                    break;
                }
                let outcome = iteration(&shared, &mut user).await;
                if matches!(outcome, Outcome::Interrupted) {
                    break;
                }
            }
            recorder.active_users.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Iterations scheduled more than this after their time count as late.
const LATE_AFTER: Duration = Duration::from_millis(25);

async fn open_model(shared: Arc<Shared>, tracker: TaskTracker, rate: f64, max_users: u32) {
    let idle: Arc<std::sync::Mutex<Vec<User>>> =
        Arc::new(std::sync::Mutex::new((0..max_users as usize).rev().map(new_user).collect()));
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let recorder = &shared.recorder;
    for k in 0u64.. {
        let due = start + period.mul_f64(k as f64);
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = shared.stop.cancelled() => break,
        }
        if Instant::now().saturating_duration_since(due) > LATE_AFTER {
            recorder.iterations_late.fetch_add(1, Ordering::Relaxed);
        }
        let user = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(mut user) = user else {
            recorder.iterations_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let shared = shared.clone();
        let idle = idle.clone();
        tracker.spawn(async move {
            shared.recorder.active_users.fetch_add(1, Ordering::Relaxed);
            iteration(&shared, &mut user).await;
            shared.recorder.active_users.fetch_sub(1, Ordering::Relaxed);
            idle.lock().unwrap_or_else(|p| p.into_inner()).push(user);
        });
    }
}

/// One pass through the scenario. Each iteration is a new session: cookies and extracted
/// values are forgotten; the connection is kept (as a browser keeps its socket).
async fn iteration(shared: &Shared, user: &mut User) -> Outcome {
    user.iteration += 1;
    user.iteration_text = user.iteration.to_string();
    user.jar.clear();
    user.extracted.clear();
    let recorder = &shared.recorder;
    for (index, step) in shared.scenario.steps.iter().enumerate() {
        let result = tokio::select! {
            r = request(shared, user, index, step) => r,
            () = shared.stop.cancelled() => {
                // Abandoned mid-request: the connection is in an unknown state.
                user.connection = None;
                recorder.iterations_interrupted.fetch_add(1, Ordering::Relaxed);
                return Outcome::Interrupted;
            }
        };
        if let Err(kind) = result {
            recorder.error(index, kind);
            if kind.breaks_connection() {
                user.connection = None;
            }
            recorder.iterations_failed.fetch_add(1, Ordering::Relaxed);
            return Outcome::Failed;
        }
        if let Some(think) = step.think {
            let pause = if think.max > think.min {
                let span = (think.max - think.min).as_nanos() as u64;
                think.min + Duration::from_nanos(next_random(&mut user.rng) % (span + 1))
            } else {
                think.min
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shared.stop.cancelled() => {
                    recorder.iterations_interrupted.fetch_add(1, Ordering::Relaxed);
                    return Outcome::Interrupted;
                }
            }
        }
    }
    recorder.iterations_completed.fetch_add(1, Ordering::Relaxed);
    Outcome::Completed
}

fn next_random(state: &mut u64) -> u64 {
    // splitmix64: think times need spread, not cryptographic quality.
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn lookup<'a>(shared: &'a Shared, user: &'a User, name: &str) -> Option<&'a str> {
    if let Some((_, v)) = user.extracted.iter().rev().find(|(k, _)| k == name) {
        return Some(v);
    }
    match name {
        "vu" => return Some(&user.id),
        "iteration" => return Some(&user.iteration_text),
        _ => {}
    }
    shared.scenario.variables.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const FORM_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'*');

/// One step: build the request, send it on the user's connection, check and extract.
async fn request(shared: &Shared, user: &mut User, index: usize, step: &Step) -> Result<(), ErrorKind> {
    let url = step.url.render(|n| lookup(shared, user, n)).map_err(|_| ErrorKind::Extraction)?;
    let url = match (&shared.scenario.base_url, url.starts_with('/')) {
        (Some(base), true) => format!("{base}{url}"),
        _ => url,
    };
    let uri: http::Uri = url.parse().map_err(|_| ErrorKind::InvalidUrl)?;
    let origin = Origin::from_uri(&uri).ok_or(ErrorKind::InvalidUrl)?;
    if !shared.options.allow.allows(&origin) {
        return Err(ErrorKind::Refused);
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let body = match &step.body {
        None => Bytes::new(),
        Some(Body::Raw(t)) => Bytes::from(t.render(|n| lookup(shared, user, n)).map_err(|_| ErrorKind::Extraction)?),
        Some(Body::Form(fields)) => {
            let mut out = String::new();
            for (k, t) in fields {
                let v = t.render(|n| lookup(shared, user, n)).map_err(|_| ErrorKind::Extraction)?;
                if !out.is_empty() {
                    out.push('&');
                }
                out.extend(percent_encoding::utf8_percent_encode(k, FORM_VALUE));
                out.push('=');
                out.extend(percent_encoding::utf8_percent_encode(&v, FORM_VALUE));
            }
            Bytes::from(out)
        }
    };
    let mut headers = http::HeaderMap::with_capacity(step.headers.len() + 3);
    for (name, t) in &step.headers {
        let v = t.render(|n| lookup(shared, user, n)).map_err(|_| ErrorKind::Extraction)?;
        headers.append(name.clone(), http::HeaderValue::from_str(&v).map_err(|_| ErrorKind::InvalidUrl)?);
    }
    if matches!(step.body, Some(Body::Form(_))) && !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-www-form-urlencoded"));
    }
    let now = jiff::Timestamp::now();
    if !user.jar.is_empty()
        && let Some(cookie) = user.jar.header_for(&origin.host, uri.path(), origin.https, now)
        && let Ok(v) = http::HeaderValue::from_str(&cookie)
    {
        headers.insert(http::header::COOKIE, v);
    }
    if let Some(limiter) = &shared.limiter {
        limiter.acquire().await;
    }
    let keep_body = step.extract.iter().any(|(_, e)| e.needs_body());
    let sent = Instant::now();
    let exchange = async {
        if user.connection.as_ref().is_none_or(|c| c.origin != origin || c.is_closed()) {
            user.connection = None;
            user.connection = Some(Connection::open(&origin, &shared.options.client).await?);
        }
        let connection = user.connection.as_mut().expect("just opened");
        let mut builder = http::Request::builder().method(step.method.clone());
        if connection.is_h2() {
            builder = builder.uri(uri.clone());
        } else {
            builder = builder.uri(path_and_query.as_str());
            headers.insert(http::header::HOST, connection.host_header.clone());
        }
        let mut request = builder.body(Full::new(body)).map_err(|_| ErrorKind::InvalidUrl)?;
        *request.headers_mut() = headers;
        connection.send(request, keep_body).await
    };
    let response = match tokio::time::timeout(shared.options.timeout, exchange).await {
        Ok(r) => r?,
        Err(_) => return Err(ErrorKind::Timeout),
    };
    let latency = sent.elapsed();
    let status = response.status.as_u16();
    shared.recorder.response(index, user.index, latency, status, response.body_len);
    for set_cookie in response.headers.get_all(http::header::SET_COOKIE) {
        if let Ok(v) = set_cookie.to_str() {
            user.jar.store(v, &origin.host, uri.path(), now);
        }
    }
    if status >= 500 {
        return Err(ErrorKind::Status5xx);
    }
    if status >= 400 {
        return Err(ErrorKind::Status4xx);
    }
    if !step.expect_status.is_empty() && !step.expect_status.contains(&status) {
        return Err(ErrorKind::UnexpectedStatus);
    }
    for (name, extractor) in &step.extract {
        let value = extractor.apply(&response.headers, &response.body).ok_or(ErrorKind::Extraction)?;
        user.extracted.push((name.clone(), value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_time_draws_stay_in_range_and_differ() {
        let mut a = 1u64;
        let draws: Vec<u64> = (0..1000).map(|_| next_random(&mut a) % 2001).collect();
        assert!(draws.iter().all(|d| *d <= 2000));
        assert!(draws.iter().any(|d| *d < 200) && draws.iter().any(|d| *d > 1800));
    }

    #[test]
    fn runs_that_would_never_end_are_refused() {
        let scenario = Scenario::single_get("http://127.0.0.1:9/").unwrap();
        let options = RunOptions {
            profile: Profile::Constant { users: 1 },
            duration: None,
            iterations_per_user: None,
            timeout: Duration::from_secs(1),
            max_rate: None,
            allow: AllowList::default(),
            client: ClientSettings::new(crate::HttpVersion::Http1, &[]).unwrap(),
        };
        let err = Run::new(scenario, options.clone()).unwrap_err().to_string();
        assert!(err.contains("--duration or --iterations"), "{err}");
        let scenario = Scenario::single_get("https://ent.ville.fr/").unwrap();
        let err = Run::new(scenario, RunOptions { duration: Some(Duration::from_secs(1)), ..options })
            .unwrap_err()
            .to_string();
        assert!(err.contains("refusing to load-test https://ent.ville.fr:443"), "{err}");
    }
}
