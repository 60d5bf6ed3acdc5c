//! `vigie`: one binary that collects, analyzes, alerts, archives and shows. This file only
//! parses the command line and wires the crates; the work is done in the libraries.

mod alert_cmd;
mod analyze;
mod archive_cmd;
mod config;
mod datadir;
mod demo;
mod demo_rules {
    //! The default rule files, embedded at build time by build.rs.
    include!(concat!(env!("OUT_DIR"), "/demo_rules.rs"));
}
mod loadtest_cmd;
mod parse;
mod pipeline;
mod reload;
mod roles;
mod services;
mod user_cmd;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Vigie watches a school district's ENT and the firewall in front of it: it collects the
/// logs and metrics, detects attacks and outages, emails on-call and the school directors,
/// keeps connection logs for one year for legal requisitions, and shows it all.
#[derive(Debug, Parser)]
#[command(name = "vigie", version, about, max_term_width = 100)]
#[command(after_help = "Start with `vigie demo` and open the URL it prints.")]
struct Cli {
    /// Log filter for Vigie's own log (`info`, `debug`, `vigie=debug,tantivy=warn`); RUST_LOG wins.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Vigie's own log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole stack from one configuration file.
    #[command(after_help = "Example:\n  vigie run --config /etc/vigie/vigie.toml")]
    Run {
        /// The TOML configuration (see config/vigie.example.toml).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Run one scale-out role joined by Kafka instead of everything (overrides `[roles]
        /// run`): collector, analyzer, archiver, alerter; or all. See docs/deployment.md.
        #[arg(long, value_name = "ROLE", value_parser = clap::builder::PossibleValuesParser::new(roles::Role::NAMES.iter().copied()))]
        role: Option<String>,
    },
    /// Run the whole stack in one process on generated ENT traffic: 188 schools, an attack
    /// burst and an outage every ten minutes. Nothing else to install.
    #[command(
        after_help = "Examples:\n  vigie demo\n  vigie demo --listen 127.0.0.1:9000 --data /tmp/vigie-demo --for 2m\n  vigie demo --smtp 127.0.0.1:2525"
    )]
    Demo {
        /// Address of the web interface.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: String,
        /// Data directory (created if needed).
        #[arg(long, default_value = "vigie-demo-data", value_name = "DIR")]
        data: PathBuf,
        /// Stop by itself, cleanly, after this long (`90s`, `5m`); default: until Ctrl-C.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration_arg)]
        run_for: Option<Duration>,
        /// Send emails to this SMTP server (`HOST:PORT`) instead of .eml files in DIR/outbox.
        #[arg(long, value_name = "HOST:PORT")]
        smtp: Option<String>,
        /// Generated web requests per second (firewall lines are a tenth of that).
        #[arg(long, default_value_t = 200, value_name = "N")]
        rate: u32,
    },
    /// Parse log files (or standard input) and print one ECS JSON object per line.
    #[command(
        after_help = "Lines that cannot be parsed give {\"error\": {\"message\", \"line\", \"file\"}}; the exit status\n\
                            is 0 even then, and non-zero only on I/O errors. A summary goes to standard error.\n\n\
                            Examples:\n  vigie parse --format apache_combined /var/log/apache2/access.log\n  \
                            zcat access.log.2.gz | vigie parse --format auto\n  \
                            vigie parse --format apache --log-format '%h %l %u %t \"%r\" %>s %b' access.log"
    )]
    Parse {
        #[command(flatten)]
        input: InputArgs,
    },
    /// Replay log files through the detection rules offline and print one JSON object per
    /// detection; or, with --test, run the tests beside rule files.
    #[command(after_help = "Each detection: rule, title, severity, source.ip and/or user.name, key, @timestamp,\n\
                            line (1-based, in its file) and evidence. A summary goes to standard error.\n\n\
                            Examples:\n  vigie analyze --format apache_combined /var/log/apache2/access.log\n  \
                            vigie analyze --rules /etc/vigie/rules --format auto fw.log web.log\n  \
                            vigie analyze --test /etc/vigie/rules")]
    Analyze {
        /// Rule directory; the built-in rules when absent.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Print every line a rule's conditions match (before windows and suppression), like
        /// fail2ban-regex's matched lines, instead of detections.
        #[arg(long)]
        matches: bool,
        /// Run the rule tests (*.test.yml) of this directory instead of analysing logs.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["rules", "files", "matches"])]
        test: Option<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Scrape metric targets once and print their samples in Prometheus text format, to check
    /// a target before putting it in the configuration.
    #[command(after_help = "Targets: host, redis://[:PASSWORD@]HOST:PORT, mysql://USER[:PASSWORD]@HOST:PORT,\n\
                            http(s)://…/metrics (Prometheus), apache+http://…/server-status?auto,\n\
                            nginx+http://…/stub_status, rabbitmq+http://USER:PASSWORD@HOST:15672.\n\
                            Exit status 1 when a target is down (its error on standard error).\n\n\
                            Examples:\n  vigie scrape --once host\n  vigie scrape --once redis://127.0.0.1:6379 mysql://root@127.0.0.1:3306")]
    Scrape {
        /// Scrape once and exit (the only mode so far: continuous scraping runs in `vigie run`).
        #[arg(long, required = true)]
        once: bool,
        /// How long each target may take.
        #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration_arg)]
        timeout: Duration,
        /// The targets.
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
    },
    /// The legal connection archive: backfill, requisition search and export, verify, purge,
    /// audit log, statistics.
    #[command(subcommand)]
    Archive(archive_cmd::ArchiveCommand),
    /// Manage the web interface's accounts: add, passwd, disable, list.
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// Load-test the ENT: virtual users follow a scenario (log in, class blog, post an
    /// article, log out) and a report gives errors by kind and latency percentiles per step.
    #[command(after_help = "Targets outside this machine must be allowed (--allow HOST, or [loadtest] allow in\n\
                            the configuration) or owned (--i-own-this-target). Requests are capped at 1000/s\n\
                            unless --max-rate says otherwise. Ctrl-C stops with a partial report.\n\n\
                            Examples:\n  vigie loadtest loadtest/scenarios/ent-blog.yml --target https://ent-recette.example.fr \\\n      \
                            --allow ent-recette.example.fr --users 1000 --ramp-up 2m --duration 10m\n  \
                            vigie loadtest scenario.yml --rate 50 --users 2000 --duration 5m --json\n  \
                            vigie loadtest --url http://127.0.0.1:8080/ --users 500 --duration 30s")]
    Loadtest(loadtest_cmd::LoadtestArgs),
    /// Silence alerts (with author, reason and end), list or end silences.
    #[command(subcommand)]
    Silence(alert_cmd::SilenceCommand),
    /// Outage notices to the school directors: list, edit, approve.
    #[command(subcommand)]
    Notice(alert_cmd::NoticeCommand),
    /// Incidents with their CCTP class and working-day deadline: list, open, close.
    #[command(subcommand)]
    Incident(alert_cmd::IncidentCommand),
    /// Planned maintenance: preventive notice, silences, warning on the 06:00-03:00 window.
    #[command(subcommand)]
    Maintenance(alert_cmd::MaintenanceCommand),
    /// Write the monthly operations report (CCTP 4.2.3) as HTML, and PDF when Chromium is
    /// installed.
    #[command(after_help = "Example:\n  vigie report --config /etc/vigie/vigie.toml --month 2025-04 --out /tmp")]
    Report {
        /// The TOML configuration of the running Vigie.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The month, `YYYY-MM`.
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Where to write rapport-YYYY-MM.html (and .pdf); default: the current directory.
        #[arg(long, default_value = ".", value_name = "DIR")]
        out: PathBuf,
    },
    /// Validate a configuration file and print every problem with file:line:column.
    #[command(
        after_help = "Exit status: 0 when valid, 2 when not.\n\nExample:\n  vigie check-config /etc/vigie/vigie.toml"
    )]
    CheckConfig {
        /// The TOML configuration to check.
        file: PathBuf,
    },
}

/// The log input of the offline commands (`parse`, `analyze`).
#[derive(Debug, clap::Args)]
struct InputArgs {
    /// The parser: auto, apache_common, apache_combined, apache_vhost_combined, apache (with
    /// --log-format), apache_error, nginx_combined, nginx (with --log-format), nginx_error,
    /// netfilter, filterlog, stormshield.
    #[arg(long, short, default_value = "auto", value_name = "FORMAT")]
    format: String,
    /// The server's LogFormat / log_format string, for --format apache or nginx.
    #[arg(long, value_name = "STRING")]
    log_format: Option<String>,
    /// Zone of timestamps written without an offset (syslog, error logs).
    #[arg(long, default_value = "Europe/Paris", value_name = "ZONE")]
    time_zone: String,
    /// Files to read; standard input when none.
    files: Vec<PathBuf>,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    config::parse_duration(s).map_err(|e| format!("{e}; write it like 90s, 5m or 1h"))
}

fn main() -> ExitCode {
    // No transparent huge pages for the heap: mimalloc asks for them on its arenas, and each
    // first touch of one made the kernel zero 2 MiB, most of it never used. `vigie parse`
    // spent 10 to 14 % of its CPU time in that zeroing (its buffers are reused, but freed
    // pages are purged and faulted in again); with 4 KiB pages it is under 1 %, and the
    // resident memory of every command is smaller. What mimalloc's own `allow_thp` option
    // does, set here because that option is only read from the environment.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    let json = cli.log_json;
    let level = cli.log_level.clone();
    match cli.command {
        Command::Loadtest(args) => report(loadtest_cmd::run(args)),
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(config) => {
                println!(
                    "{}: valid ({} source{}, data in {})",
                    file.display(),
                    config.sources.len(),
                    if config.sources.len() == 1 { "" } else { "s" },
                    config.data_dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{errors}");
                ExitCode::from(2)
            }
        },
        Command::Parse { input } => {
            let stdout = std::io::stdout();
            let InputArgs { format, log_format, time_zone, files } = input;
            report(parse::run(&format, log_format.as_deref(), &time_zone, &files, stdout.lock()).map(drop))
        }
        Command::Analyze { test: Some(dir), .. } => match analyze::test(&dir) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => report(Err(e)),
        },
        Command::Analyze { rules, matches, test: None, input } => {
            let InputArgs { format, log_format, time_zone, files } = input;
            let mode = if matches { analyze::Mode::Matches } else { analyze::Mode::Detections };
            let stdout = std::io::stdout();
            let out = stdout.lock();
            report(
                analyze::run(mode, rules.as_deref(), &format, log_format.as_deref(), &time_zone, &files, out).map(drop),
            )
        }
        Command::Scrape { once: _, timeout, targets } => scrape_once(&targets, timeout),
        Command::Silence(cmd) => report(alert_cmd::silence(cmd)),
        Command::Notice(cmd) => report(alert_cmd::notice(cmd)),
        Command::Incident(cmd) => report(alert_cmd::incident(cmd)),
        Command::Maintenance(cmd) => report(alert_cmd::maintenance(cmd)),
        Command::Report { config, month, out } => report(alert_cmd::monthly_report(&config, &month, &out)),
        Command::User(command) => report(user_cmd::run(command)),
        Command::Archive(command) => match archive_cmd::run(command) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => report(Err(e)),
        },
        Command::Run { config: file, role } => {
            let config = match config::load(&file) {
                Ok(mut c) => {
                    if let Some(role) = role.as_deref().and_then(roles::Role::parse) {
                        c.role = role;
                    }
                    c
                }
                Err(errors) => {
                    eprint!("{errors}");
                    return ExitCode::from(2);
                }
            };
            init_logging(
                level.as_deref().unwrap_or(&config.log.level),
                json || config.log.format == config::LogFormat::Json,
            );
            report(run_stack(config, None, |addr| {
                tracing::info!(url = %format!("http://{addr}/"), "vigie is running");
            }))
        }
        Command::Demo { listen, data, run_for, smtp, rate } => {
            init_logging(level.as_deref().unwrap_or("info"), json);
            let config = match demo::config(&listen, &data, smtp.as_deref(), rate) {
                Ok(c) => c,
                Err(e) => return report(Err(e)),
            };
            report(run_stack(config, run_for, |addr| demo::banner(addr, &data)))
        }
    }
}

/// `vigie scrape --once`: each target in turn, samples on stdout, errors on stderr.
fn scrape_once(targets: &[String], timeout: Duration) -> ExitCode {
    let parsed: Result<Vec<collector::Target>, _> = targets.iter().map(|t| collector::Target::parse(t)).collect();
    let targets = match parsed {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vigie: error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return report(Err(e).context("starting the runtime")),
    };
    let scrapes = runtime.block_on(async {
        let mut out = Vec::with_capacity(targets.len());
        for target in &targets {
            out.push(collector::scrape(target, timeout).await);
        }
        out
    });
    print!("{}", collector::render_prometheus_text(&scrapes));
    let mut all_up = true;
    for s in scrapes.iter().filter(|s| !s.up) {
        all_up = false;
        eprintln!("vigie: {} is down: {}", s.target, s.error.as_deref().unwrap_or("no answer"));
    }
    if all_up { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `vigie parse … | head`: the reader has what it wanted; not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigie: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run_stack(
    config: config::Config,
    run_for: Option<Duration>,
    banner: impl FnOnce(&std::net::SocketAddr),
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let data = datadir::DataDir::open(&config.data_dir)?;
        let shutdown = CancellationToken::new();
        {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal(run_for).await;
                shutdown.cancel();
            });
        }
        let summary = roles::run(config, data, shutdown, banner).await?;
        if summary.failures.is_empty() {
            tracing::info!("stopped cleanly");
            Ok(())
        } else {
            anyhow::bail!("stopped after a failure: {}", summary.failures.join("; "))
        }
    })
}

async fn wait_for_signal(run_for: Option<Duration>) {
    let timer = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
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
        () = timer => tracing::info!("run time elapsed"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        () = sigterm => tracing::info!("terminated"),
    }
}
