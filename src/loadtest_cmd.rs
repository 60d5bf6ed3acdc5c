//! `vigie loadtest`: the command line of the load-test tool (the work is in the `loadtest`
//! crate): options to a profile, the allow-list from `--allow` and the configuration's
//! `[loadtest]` table, a live progress line, Ctrl-C to a partial report, text or JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

/// `vigie loadtest` options.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadtestArgs {
    /// The scenario file (YAML; see loadtest/scenarios/ent-blog.yml). Or use --url.
    #[arg(value_name = "SCENARIO", required_unless_present = "url", conflicts_with = "url")]
    scenario: Option<PathBuf>,
    /// Instead of a scenario: every user requests this URL in a loop (like oha or wrk).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Replaces the scenario's base_url (`https://ent-recette.example.fr`).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// Virtual users (constant and ramp-up profiles), or the most users the arrival-rate
    /// profile may use at once.
    #[arg(long, short, default_value_t = 10, value_name = "N")]
    users: u32,
    /// Ramp-up profile: start the users one after the other over this time.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "rate")]
    ramp_up: Option<Duration>,
    /// Constant arrival rate (open model): start this many iterations per second, whatever
    /// the server's latency; those finding every user busy are dropped and counted.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Stop after this long (`30s`, `10m`); Ctrl-C stops earlier with a partial report.
    #[arg(long, short, value_name = "DURATION", value_parser = duration)]
    duration: Option<Duration>,
    /// Each user stops after this many iterations (constant and ramp-up profiles).
    #[arg(long, short = 'n', value_name = "N", conflicts_with = "rate")]
    iterations: Option<u64>,
    /// A request without a complete response after this long counts as a timeout.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = duration)]
    timeout: Duration,
    /// Speak HTTP/2 (ALPN over TLS, prior knowledge over plain http).
    #[arg(long)]
    http2: bool,
    /// Also trust the CA certificates in this PEM file (repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// Allow this target: `host`, `host:port` or `*.domain` (repeatable). This machine is
    /// always allowed.
    #[arg(long, value_name = "HOST")]
    allow: Vec<String>,
    /// Read the `[loadtest]` table (allow, max_rate) of this Vigie configuration.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Target a host outside the allow-list: you run this platform and may load it.
    #[arg(long)]
    i_own_this_target: bool,
    /// Cap on requests per second, all users together (`none` for no cap). Default: the
    /// configuration's max_rate, else 1000.
    #[arg(long, value_name = "N|none")]
    max_rate: Option<String>,
    /// Skip every think time of the scenario.
    #[arg(long)]
    no_think: bool,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// No live progress line.
    #[arg(long, short)]
    quiet: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    loadtest::parse_duration(s)
}

fn read_config(path: &Path) -> anyhow::Result<loadtest::LoadtestConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    match table.remove("loadtest") {
        Some(value) => value
            .try_into()
            .with_context(|| format!("{}: [loadtest] (keys: allow = [\"host\", …], max_rate = N)", path.display())),
        None => Ok(loadtest::LoadtestConfig::default()),
    }
}

/// Runs `vigie loadtest`.
pub(crate) fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => read_config(path)?,
        None => loadtest::LoadtestConfig::default(),
    };
    let mut scenario = match (&args.scenario, &args.url) {
        (Some(path), _) => loadtest::Scenario::load(path)?,
        (None, Some(url)) => loadtest::Scenario::single_get(url)?,
        (None, None) => bail!("give a scenario file or --url"),
    };
    if let Some(target) = &args.target {
        scenario.set_base_url(target).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
    }
    if args.no_think {
        scenario.without_think_time();
    }
    let max_rate =
        match args.max_rate.as_deref() {
            Some("none" | "unlimited") => None,
            Some(n) => Some(n.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0).with_context(|| {
                format!("--max-rate {n}: give a positive number of requests per second, or `none`")
            })?),
            None => Some(config.max_rate.unwrap_or(loadtest::DEFAULT_MAX_RATE)),
        };
    let allow_entries: Vec<&String> = config.allow.iter().chain(&args.allow).collect();
    let allow =
        loadtest::AllowList::new(&allow_entries).map_err(|e| anyhow::anyhow!(e))?.own_target(args.i_own_this_target);
    let profile = match (args.rate, args.ramp_up) {
        (Some(rate), _) => loadtest::Profile::ArrivalRate { rate, max_users: args.users },
        (None, Some(ramp)) => loadtest::Profile::RampUp { users: args.users, ramp },
        (None, None) => loadtest::Profile::Constant { users: args.users },
    };
    let version = if args.http2 { loadtest::HttpVersion::Http2 } else { loadtest::HttpVersion::Http1 };
    let cas: Vec<&Path> = args.ca_cert.iter().map(PathBuf::as_path).collect();
    let client = loadtest::ClientSettings::new(version, &cas)?;
    let options = loadtest::RunOptions {
        profile,
        duration: args.duration,
        iterations_per_user: args.iterations,
        timeout: args.timeout,
        max_rate,
        allow,
        client,
    };
    let run = loadtest::Run::new(scenario, options)?;

    // One socket per user: make room for them, and say so if there is not enough.
    match loadtest::raise_open_files_limit() {
        Ok(limit) if limit < u64::from(args.users) + 64 => eprintln!(
            "vigie: warning: the open-file limit is {limit}, fewer than {} users need; connections will fail \
             (raise it with `ulimit -Hn` as root or LimitNOFILE= in systemd)",
            args.users
        ),
        Ok(_) => {}
        Err(e) => eprintln!("vigie: warning: could not raise the open-file limit: {e}"),
    }

    // On one core (a container's quota, or `taskset` giving the generator a core of its own),
    // a single-threaded runtime spends nothing on work stealing and cross-thread wake-ups.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build().context("starting the runtime")?;
    let expected_iterations = args.iterations.map(|n| n * u64::from(args.users));
    let report = runtime.block_on(async {
        let cancel = CancellationToken::new();
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                let sigterm = async {
                    match term.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    () = sigterm => {}
                }
                cancel.cancel();
            });
        }
        let recorder = run.recorder();
        let done = CancellationToken::new();
        let progress = (!args.quiet).then(|| {
            let done = done.clone();
            tokio::spawn(show_progress(recorder, args.duration, expected_iterations, done))
        });
        let report = run.run(cancel).await;
        done.cancel();
        if let Some(p) = progress {
            let _ = p.await;
        }
        report
    });
    // The runtime holds thousands of sockets; close them before printing.
    runtime.shutdown_timeout(Duration::from_secs(1));

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let tz = jiff::tz::TimeZone::get("Europe/Paris").context("loading the Europe/Paris time zone")?;
        print!("{}", report.render_text(&analyzer::format_date_fr(report.started, &tz)));
    }
    if report.interrupted {
        eprintln!("vigie: interrupted: the report covers the run until Ctrl-C");
    }
    Ok(())
}

/// The live progress line on standard error (hidden when it is not a terminal).
async fn show_progress(
    recorder: Arc<loadtest::Recorder>,
    duration: Option<Duration>,
    iterations: Option<u64>,
    done: CancellationToken,
) {
    let (length, by_time) = match (duration, iterations) {
        (Some(d), _) => (d.as_secs().max(1), true),
        (None, Some(n)) => (n, false),
        (None, None) => (0, false),
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(length), indicatif::ProgressDrawTarget::stderr());
    let style = if by_time { "{bar:30} {elapsed}/{len}s  {msg}" } else { "{bar:30} {pos}/{len} parcours  {msg}" };
    if let Ok(style) = indicatif::ProgressStyle::with_template(style) {
        bar.set_style(style);
    }
    let start = Instant::now();
    let mut last = (start, 0u64);
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = done.cancelled() => break,
        }
        let live = recorder.live();
        let now = Instant::now();
        let rate = (live.responses - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, live.responses);
        bar.set_position(if by_time { start.elapsed().as_secs() } else { live.iterations });
        bar.set_message(format!(
            "{} réponses · {:.0} req/s · {} erreurs · {} utilisateurs actifs{}",
            live.responses,
            rate,
            live.errors,
            live.active_users,
            if live.dropped > 0 { format!(" · {} parcours abandonnés", live.dropped) } else { String::new() }
        ));
    }
    bar.finish_and_clear();
}
