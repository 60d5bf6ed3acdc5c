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

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{ClientSettings, Connection, Origin};
use crate::cookies::CookieJar;
use crate::h1::{Keep, Outgoing};
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
    /// What each step's requests share, worked out once.
    prepared: Vec<Prepared>,
    options: RunOptions,
    recorder: Arc<Recorder>,
    limiter: Option<RateLimiter>,
    /// Cancelled at the deadline or on Ctrl-C.
    stop: CancellationToken,
    /// Set with `stop`; read by users between iterations without taking the token's lock.
    stopping: AtomicBool,
    deadline: Option<Instant>,
}

/// A request's URL, parsed and checked against the allow-list.
#[derive(Debug)]
struct Target {
    uri: http::Uri,
    origin: Origin,
    allowed: bool,
}

impl Target {
    fn of(url: &str, allow: &AllowList) -> Result<Target, ErrorKind> {
        let uri: http::Uri = url.parse().map_err(|_| ErrorKind::InvalidUrl)?;
        let origin = Origin::from_uri(&uri).ok_or(ErrorKind::InvalidUrl)?;
        let allowed = allow.allows(&origin);
        Ok(Target { uri, origin, allowed })
    }

    /// The origin-form request target.
    fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }
}

/// The parts of a step's requests that do not depend on the user.
#[derive(Debug)]
struct Prepared {
    /// The URL when its template has no variable.
    target: Option<Result<Target, ErrorKind>>,
    /// The headers (with the form content type) when no header is templated.
    headers: Option<http::HeaderMap>,
    /// What the step's extractions read from a response.
    keep: Keep,
}

impl Prepared {
    fn of(scenario: &Scenario, step: &Step, allow: &AllowList) -> Prepared {
        let target = step.url.literal().map(|url| Target::of(&absolute(scenario, url), allow));
        let headers = step
            .headers
            .iter()
            .map(|(name, t)| Some((name, http::HeaderValue::from_str(t.literal()?).ok()?)))
            .collect::<Option<Vec<_>>>()
            .map(|fixed| {
                let mut headers = http::HeaderMap::with_capacity(fixed.len() + 1);
                for (name, value) in fixed {
                    headers.append(name.clone(), value);
                }
                add_form_type(step, &mut headers);
                headers
            });
        let keep = Keep {
            body: step.extract.iter().any(|(_, e)| e.needs_body()),
            headers: step.extract.iter().any(|(_, e)| e.needs_headers()),
        };
        Prepared { target, headers, keep }
    }
}

fn absolute(scenario: &Scenario, url: &str) -> String {
    match (&scenario.base_url, url.starts_with('/')) {
        (Some(base), true) => format!("{base}{url}"),
        _ => url.to_owned(),
    }
}

fn add_form_type(step: &Step, headers: &mut http::HeaderMap) {
    if matches!(step.body, Some(Body::Form(_))) && !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-www-form-urlencoded"));
    }
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

/// A running user, counted active while it exists. The run's end drops (aborts) users
/// wherever they are: an iteration dropped half-way is counted as interrupted, without any
/// check on the request path.
struct Active<'a> {
    recorder: &'a Recorder,
    in_iteration: bool,
}

impl<'a> Active<'a> {
    fn new(recorder: &'a Recorder) -> Active<'a> {
        recorder.active_users.fetch_add(1, Ordering::Relaxed);
        Active { recorder, in_iteration: false }
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        if self.in_iteration {
            self.recorder.iterations_interrupted.fetch_add(1, Ordering::Relaxed);
        }
        self.recorder.active_users.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The request timeout of one user, on one timer re-armed lazily: arming a timer per request
/// costs a timer-wheel insertion and removal each time; here the timer stays armed at an
/// earlier request's deadline and, when it fires, is moved to the current request's deadline
/// unless that one has passed — about one re-arm per timeout period, whatever the request rate.
#[derive(Debug)]
struct Deadline {
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    fn new() -> Deadline {
        Deadline { sleep: Box::pin(tokio::time::sleep_until(Instant::now())) }
    }

    /// `future`'s output, or `Err(())` if `deadline` passes first.
    async fn within<F: Future>(&mut self, deadline: Instant, future: F) -> Result<F::Output, ()> {
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let mut future = std::pin::pin!(future);
        let sleep = &mut self.sleep;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            while sleep.as_mut().poll(cx).is_ready() {
                if sleep.deadline() >= deadline {
                    return Poll::Ready(Err(()));
                }
                sleep.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }
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
        let prepared = scenario.steps.iter().map(|step| Prepared::of(&scenario, step, &options.allow)).collect();
        Ok(Run {
            shared: Arc::new(Shared {
                scenario,
                prepared,
                options,
                recorder,
                limiter,
                stop: CancellationToken::new(),
                stopping: AtomicBool::new(false),
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
            let shared = shared.clone();
            tokio::spawn(async move {
                let by_deadline = async {
                    match shared.deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                let was_cancelled = tokio::select! {
                    () = cancel.cancelled() => true,
                    () = by_deadline => false,
                    () = shared.stop.cancelled() => false,
                };
                shared.stopping.store(true, Ordering::Relaxed);
                shared.stop.cancel();
                was_cancelled
            })
        };
        let tracker = TaskTracker::new();
        let users = match shared.options.profile.clone() {
            Profile::Constant { users } => spawn_closed(&shared, &tracker, users, Duration::ZERO),
            Profile::RampUp { users, ramp } => spawn_closed(&shared, &tracker, users, ramp),
            Profile::ArrivalRate { rate, max_users } => {
                let shared = shared.clone();
                let inner = tracker.clone();
                tracker.spawn(async move { open_model(shared, inner, rate, max_users).await });
                Vec::new()
            }
        };
        tracker.close();
        let elapsed = tokio::select! {
            () = tracker.wait() => start.elapsed(),
            () = stop.cancelled() => {
                // The measured window ends here: what is in flight is abandoned, not counted, and
                // closing thousands of sockets is not part of the load.
                let elapsed = start.elapsed();
                // Users are dropped wherever they are: mid-request, thinking, or connecting.
                for user in &users {
                    user.abort();
                }
                tracker.wait().await;
                elapsed
            }
        };
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

/// Starts the users of the closed profiles; the handles abort them at the end of the run.
fn spawn_closed(shared: &Arc<Shared>, tracker: &TaskTracker, users: u32, ramp: Duration) -> Vec<AbortHandle> {
    (0..users as usize)
        .map(|index| {
            let shared = shared.clone();
            let delay = ramp.mul_f64(index as f64 / f64::from(users));
            let task = tracker.spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut active = Active::new(&shared.recorder);
                let mut user = new_user(index);
                let mut deadline = Deadline::new();
                while !shared.stopping.load(Ordering::Relaxed)
                    && shared.options.iterations_per_user.is_none_or(|n| user.iteration < n)
                {
                    iteration(&shared, &mut user, &mut deadline, &mut active).await;
                    // An iteration that fails before sending anything never yields: let the
                    // other tasks (and the end of the run) have their turn.
                    tokio::task::consume_budget().await;
                }
            });
            task.abort_handle()
        })
        .collect()
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
            let mut active = Active::new(&shared.recorder);
            let mut deadline = Deadline::new();
            let finished = tokio::select! {
                () = iteration(&shared, &mut user, &mut deadline, &mut active) => true,
                () = shared.stop.cancelled() => false,
            };
            if finished {
                idle.lock().unwrap_or_else(|p| p.into_inner()).push(user);
            }
        });
    }
}

/// One pass through the scenario. Each iteration is a new session: cookies and extracted
/// values are forgotten; the connection is kept (as a browser keeps its socket).
async fn iteration(shared: &Shared, user: &mut User, deadline: &mut Deadline, active: &mut Active<'_>) {
    user.iteration += 1;
    user.iteration_text.clear();
    let _ = write!(user.iteration_text, "{}", user.iteration);
    user.jar.clear();
    user.extracted.clear();
    active.in_iteration = true;
    let recorder = &shared.recorder;
    for (index, step) in shared.scenario.steps.iter().enumerate() {
        if let Err(kind) = request(shared, user, index, step, deadline).await {
            recorder.error(index, kind);
            if kind.breaks_connection() {
                user.connection = None;
            }
            recorder.iterations_failed.fetch_add(1, Ordering::Relaxed);
            active.in_iteration = false;
            return;
        }
        if let Some(think) = step.think {
            let pause = if think.max > think.min {
                let span = (think.max - think.min).as_nanos() as u64;
                think.min + Duration::from_nanos(next_random(&mut user.rng) % (span + 1))
            } else {
                think.min
            };
            tokio::time::sleep(pause).await;
        }
    }
    recorder.iterations_completed.fetch_add(1, Ordering::Relaxed);
    active.in_iteration = false;
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

/// One step: build the request, send it on the user's connection, check and extract. What
/// does not depend on the user (a URL or headers without variables) was prepared once.
async fn request(
    shared: &Shared,
    user: &mut User,
    index: usize,
    step: &Step,
    deadline: &mut Deadline,
) -> Result<(), ErrorKind> {
    let prepared = &shared.prepared[index];
    let rendered;
    let target = match &prepared.target {
        Some(fixed) => fixed.as_ref().map_err(|kind| *kind)?,
        None => {
            let url = step.url.render(|n| lookup(shared, user, n)).map_err(|_| ErrorKind::Extraction)?;
            rendered = Target::of(&absolute(&shared.scenario, &url), &shared.options.allow)?;
            &rendered
        }
    };
    if !target.allowed {
        return Err(ErrorKind::Refused);
    }
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
    let cookie = if user.jar.is_empty() {
        None
    } else {
        user.jar
            .header_for(&target.origin.host, target.uri.path(), target.origin.https, jiff::Timestamp::now())
            .and_then(|c| http::HeaderValue::from_str(&c).ok())
    };
    let built;
    let headers = match (&prepared.headers, cookie) {
        (Some(fixed), None) => fixed,
        (fixed, cookie) => {
            let mut headers = match fixed {
                Some(fixed) => fixed.clone(),
                None => {
                    let mut headers = http::HeaderMap::with_capacity(step.headers.len() + 2);
                    for (name, t) in &step.headers {
                        let v = t.render(|n| lookup(shared, user, n)).map_err(|_| ErrorKind::Extraction)?;
                        headers
                            .append(name.clone(), http::HeaderValue::from_str(&v).map_err(|_| ErrorKind::InvalidUrl)?);
                    }
                    add_form_type(step, &mut headers);
                    headers
                }
            };
            if let Some(cookie) = cookie {
                headers.insert(http::header::COOKIE, cookie);
            }
            built = headers;
            &built
        }
    };
    if let Some(limiter) = &shared.limiter {
        limiter.acquire().await;
    }
    let sent = Instant::now();
    let exchange = async {
        if user.connection.as_mut().is_none_or(|c| c.origin != target.origin || c.is_closed()) {
            user.connection = None;
            // Boxed: the TLS and HTTP/2 handshakes make a large future, which would otherwise be
            // copied into every request's future although a user connects only once.
            user.connection = Some(Box::pin(Connection::open(&target.origin, &shared.options.client)).await?);
        }
        let connection = user.connection.as_mut().expect("just opened");
        let outgoing =
            Outgoing { method: &step.method, target: target.path_and_query(), uri: &target.uri, headers, body: &body };
        connection.send(&outgoing, prepared.keep).await
    };
    let response = match deadline.within(sent + shared.options.timeout, exchange).await {
        Ok(r) => r?,
        Err(()) => return Err(ErrorKind::Timeout),
    };
    let latency = sent.elapsed();
    let status = response.status.as_u16();
    shared.recorder.response(index, user.index, latency, status, response.body_len);
    if response.headers.contains_key(http::header::SET_COOKIE) {
        let now = jiff::Timestamp::now();
        for set_cookie in response.headers.get_all(http::header::SET_COOKIE) {
            if let Ok(v) = set_cookie.to_str() {
                user.jar.store(v, &target.origin.host, target.uri.path(), now);
            }
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

    #[tokio::test(start_paused = true)]
    async fn the_lazily_rearmed_timeout_fires_at_each_requests_own_deadline() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut deadline = Deadline::new();
        // Arms the timer at t0 + 1 s; the request ends at 0.1 s and leaves it armed there.
        assert_eq!(deadline.within(t0 + ms(1000), async { tokio::time::sleep(ms(100)).await }).await, Ok(()));
        // The next request's deadline is 1.1 s: the timer fires at 1 s, is moved, and the
        // request, done at 1.05 s, is not a timeout.
        let late = deadline.within(t0 + ms(1100), async { tokio::time::sleep(ms(950)).await }).await;
        assert_eq!(late, Ok(()));
        assert_eq!(t0.elapsed(), ms(1050));
        // A request that never ends times out exactly at its own deadline.
        let stuck = deadline.within(t0 + ms(2050), std::future::pending::<()>()).await;
        assert_eq!(stuck, Err(()));
        assert_eq!(t0.elapsed(), ms(2050));
        // A quick request re-arms the timer 1 s ahead; a shorter deadline after it still holds.
        let now = Instant::now();
        assert_eq!(deadline.within(now + ms(1000), async { tokio::time::sleep(ms(1)).await }).await, Ok(()));
        assert_eq!(deadline.sleep.deadline(), now + ms(1000));
        let now = Instant::now();
        let stuck = deadline.within(now + ms(10), std::future::pending::<()>()).await;
        assert_eq!((stuck, now.elapsed()), (Err(()), ms(10)));
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
