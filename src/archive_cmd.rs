//! `vigie archive …`: the legal archive from the command line — backfill, requisition
//! searches and exports, verification, purge, audit log, statistics. The work is done by
//! `retention` (the web page calls the same functions).

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use retention::{Archive, ArchiveKey, ExportFormat, PublicKey, Requisition, RequisitionQuery, Requisitions, Scope};

/// Records appended between two commits of a backfill: a `kill -9` loses at most this many,
/// which the next run replays (ids are `file:line`, so nothing is counted twice).
const INGEST_BATCH: usize = 100_000;

#[derive(Debug, Subcommand)]
pub(crate) enum ArchiveCommand {
    /// Create the Ed25519 key that signs manifests, certificates, exports and the audit log.
    #[command(
        after_help = "Keep the key outside the data directory; KEY.pub (the public half) is written beside it.\n\n\
                            Example:\n  vigie archive keygen --key /etc/vigie/archive.key"
    )]
    Keygen {
        /// Where to write the secret key (never overwritten).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Backfill the archive from log files, through the same parsers as `vigie parse`.
    #[command(after_help = "Re-running on the same files is safe: records are identified by file and line.\n\
                            With --key, days past the grace period are sealed at the end.\n\n\
                            Example:\n  vigie archive ingest --data /var/lib/vigie --format apache_combined access.log.1 access.log")]
    Ingest {
        #[command(flatten)]
        data: DataArg,
        /// The parser (see `vigie parse --help`).
        #[arg(long, short, default_value = "auto", value_name = "FORMAT")]
        format: String,
        /// The server's LogFormat / log_format string, for --format apache or nginx.
        #[arg(long, value_name = "STRING")]
        log_format: Option<String>,
        /// Zone of timestamps written without an offset.
        #[arg(long, default_value = "Europe/Paris", value_name = "ZONE")]
        time_zone: String,
        /// Route → operation table (TOML); the built-in Beneylu School 3 table when absent.
        #[arg(long, value_name = "FILE")]
        routes: Option<PathBuf>,
        /// Signing key: seal the days past the grace period once ingested.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// How long after its end a day may still receive records before it is sealed.
        #[arg(long, default_value = "2h", value_name = "DURATION", value_parser = duration_arg)]
        grace: std::time::Duration,
        /// The files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Search under a requisition: one JSON record per line on standard output.
    #[command(
        after_help = "REF is AUTHORITY;PROCEDURE;LEGAL BASIS;DATE. Every search is written to the audit log.\n\n\
                            Example:\n  vigie archive search --data /var/lib/vigie --key /etc/vigie/archive.key --ip 192.0.2.10 --port 51234 \\\n    \
                            --from 2025-04-01T00:00:00Z --to 2025-04-08T00:00:00Z \\\n    \
                            --requisition 'Parquet de Lyon;PV 2025/42;art. 60-1 CPP;2025-04-10' --operator 'Mme Legrand'"
    )]
    Search {
        #[command(flatten)]
        req: RequisitionArgs,
        /// Page (0-based).
        #[arg(long, default_value_t = 0, value_name = "N")]
        page: usize,
        /// Records per page.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        page_size: usize,
    },
    /// Export under a requisition to a signed CSV or JSON file.
    #[command(after_help = "The header states the requisition, the query, the clock source, the record count, the\n\
                            SHA-256 of the records and an Ed25519 signature; the file's SHA-256 goes to the audit log.\n\n\
                            Example:\n  vigie archive export --data /var/lib/vigie --key /etc/vigie/archive.key --user jdupont \\\n    \
                            --requisition 'Parquet de Lyon;PV 2025/42;art. 60-1 CPP;2025-04-10' --operator 'Mme Legrand' \\\n    \
                            --export-format csv --out reponse-PV-2025-42.csv")]
    Export {
        #[command(flatten)]
        req: RequisitionArgs,
        /// csv or json.
        #[arg(long, default_value = "csv", value_name = "FORMAT")]
        export_format: String,
        /// The file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check every sealed day's manifest, signature and files, and the chain; name each broken day.
    #[command(after_help = "Exit status: 0 when intact, 1 when a day is broken.\n\n\
                            Example:\n  vigie archive verify --data /var/lib/vigie --public-key /etc/vigie/archive.key.pub")]
    Verify {
        #[command(flatten)]
        data: DataArg,
        /// The public key (KEY.pub written by keygen).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
    /// Delete the days past the retention period (legal holds excepted), with certificates.
    #[command(
        after_help = "Example:\n  vigie archive purge --data /var/lib/vigie --key /etc/vigie/archive.key --dry-run"
    )]
    Purge {
        #[command(flatten)]
        data: DataArg,
        /// Signing key for the deletion certificates.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Days kept (at least 365).
        #[arg(long, default_value_t = 365, value_name = "DAYS")]
        keep_days: u32,
        /// Say what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the requisition audit log (checked); the reading is itself audited.
    #[command(
        after_help = "Example:\n  vigie archive audit --data /var/lib/vigie --key /etc/vigie/archive.key --operator 'M. Martin (DPO)'"
    )]
    Audit {
        #[command(flatten)]
        data: DataArg,
        /// Signing key (the audit log is signed with it).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Who reads the log.
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Print, as JSON, the archive's days, document counts and duplicate ids (which must be 0).
    #[command(after_help = "Example:\n  vigie archive stats --data /var/lib/vigie")]
    Stats {
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DataArg {
    /// The data directory (the archive is in its archive/ folder).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RequisitionArgs {
    #[command(flatten)]
    data: DataArg,
    /// Signing key (exports and audit entries are signed with it).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The client address searched.
    #[arg(long, value_name = "IP", group = "scope")]
    ip: Option<IpAddr>,
    /// With --ip: the client's source port.
    #[arg(long, value_name = "N", requires = "ip")]
    port: Option<u16>,
    /// A CIDR range of client addresses.
    #[arg(long, value_name = "CIDR", group = "scope")]
    network: Option<String>,
    /// The account searched.
    #[arg(long, value_name = "ID", group = "scope")]
    user: Option<String>,
    /// The school (UAI) searched.
    #[arg(long, value_name = "UAI", group = "scope")]
    school: Option<String>,
    /// Start of the window (RFC 3339, or a date meaning its 00:00 UTC); default: 365 days ago.
    #[arg(long, value_name = "T")]
    from: Option<String>,
    /// End of the window, exclusive; default: now.
    #[arg(long, value_name = "T")]
    to: Option<String>,
    /// AUTHORITY;PROCEDURE;LEGAL BASIS;DATE (YYYY-MM-DD).
    #[arg(long, value_name = "REF")]
    requisition: String,
    /// Who searches.
    #[arg(long, value_name = "NAME")]
    operator: String,
    /// How the clock is synchronised, stated in exports.
    #[arg(long, default_value = "horloge système (UTC), synchronisation NTP de l'hôte", value_name = "TEXT")]
    clock_source: String,
}

fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(s).map_err(|e| format!("{e}; write it like 90s, 5m or 2h"))
}

/// Runs one `vigie archive` command; `Ok(false)` means "ran, but found a problem" (verify).
pub(crate) fn run(command: ArchiveCommand) -> anyhow::Result<bool> {
    match command {
        ArchiveCommand::Keygen { key } => {
            let k = ArchiveKey::generate(&key)?;
            println!("{}", k.public().to_hex());
            eprintln!(
                "secret key written to {} (keep it outside the data directory); public key in {}",
                key.display(),
                retention::public_key_path(&key).display()
            );
            Ok(true)
        }
        ArchiveCommand::Ingest { data, format, log_format, time_zone, routes, key, grace, files } => ingest(
            &data.data,
            &format,
            log_format.as_deref(),
            &time_zone,
            routes.as_deref(),
            key.as_deref(),
            grace,
            &files,
        ),
        ArchiveCommand::Search { req, page, page_size } => {
            let (desk, requisition, query) = requisition_desk(&req)?;
            let found = desk.search(&requisition, &req.operator, &query, page, page_size)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for r in &found.records {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            eprintln!(
                "{} of {} records (page {}, {} per page); audit entry {}",
                found.records.len(),
                found.total,
                found.page,
                found.page_size,
                found.audit_entry
            );
            Ok(true)
        }
        ArchiveCommand::Export { req, export_format, out } => {
            let format = match export_format.as_str() {
                "csv" => ExportFormat::Csv,
                "json" => ExportFormat::Json,
                other => bail!("--export-format {other}: write csv or json"),
            };
            if out.exists() {
                bail!("{} exists already; an export never overwrites a file", out.display());
            }
            let (desk, requisition, query) = requisition_desk(&req)?;
            let export = desk.export(&requisition, &req.operator, &query, format)?;
            std::fs::write(&out, &export.bytes).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "{} records exported to {} (SHA-256 {}); audit entry {}",
                export.record_count,
                out.display(),
                export.sha256,
                export.audit_entry
            );
            Ok(true)
        }
        ArchiveCommand::Verify { data, public_key } => {
            let public = PublicKey::load(&public_key)?;
            let report = retention::verify(&archive_dir(&data.data), &public)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            for p in &report.problems {
                eprintln!("vigie: archive day {} is broken: {}", p.day, p.problem);
            }
            Ok(report.is_intact())
        }
        ArchiveCommand::Purge { data, key, keep_days, dry_run } => {
            if keep_days < 365 {
                bail!("--keep-days {keep_days} is less than the one year the law requires (L34-1 CPCE)");
            }
            let _lock = crate::datadir::DataDir::open(&data.data)?;
            let mut archive = Archive::open(&archive_dir(&data.data))?;
            archive.set_key(ArchiveKey::load(&key)?);
            let holds = archive.legal_holds()?;
            let report = archive.purge(jiff::Timestamp::now(), keep_days, &holds, dry_run)?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "dry_run": dry_run, "report": report }))?);
            Ok(true)
        }
        ArchiveCommand::Audit { data, key, operator } => {
            let desk =
                Requisitions::new(&archive_dir(&data.data), &audit_path(&data.data), ArchiveKey::load(&key)?, "");
            for entry in desk.audit(&operator)? {
                println!("{}", serde_json::to_string(&entry)?);
            }
            Ok(true)
        }
        ArchiveCommand::Stats { data } => {
            let archive = Archive::open_read_only(&archive_dir(&data.data))
                .with_context(|| format!("opening the archive in {}", data.data.display()))?;
            let stats = archive.stats().context("reading the archive")?;
            let sealed: std::collections::BTreeSet<_> = archive.sealed_days().collect();
            let days: Vec<_> = stats
                .days
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "day": d.day.to_string(),
                        "documents": d.documents,
                        "first": d.first.map(|t| t.to_string()),
                        "last": d.last.map(|t| t.to_string()),
                        "sealed": sealed.contains(&d.day),
                    })
                })
                .collect();
            let json = serde_json::json!({
                "documents": stats.total_documents,
                "duplicate_ids": stats.duplicate_event_ids,
                "days": days,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(true)
        }
    }
}

fn archive_dir(data: &Path) -> PathBuf {
    data.join("archive")
}

/// The requisition audit log: in the data directory, beside (not inside) the archive.
fn audit_path(data: &Path) -> PathBuf {
    data.join("audit").join("requisitions.jsonl")
}

fn parse_time(s: &str, flag: &str) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Ok(jiff::tz::Offset::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))?);
    }
    bail!("{flag} {s}: write an RFC 3339 time (2025-04-07T08:00:00Z) or a date (2025-04-07, at 00:00 UTC)")
}

fn requisition_desk(args: &RequisitionArgs) -> anyhow::Result<(Requisitions, Requisition, RequisitionQuery)> {
    let parts: Vec<&str> = args.requisition.split(';').map(str::trim).collect();
    let [authority, procedure, basis, date] = parts[..] else {
        bail!(
            "--requisition {:?}: write AUTHORITY;PROCEDURE;LEGAL BASIS;DATE, e.g. 'Parquet de Lyon;PV 2025/42;art. 60-1 CPP;2025-04-10'",
            args.requisition
        );
    };
    let requisition = Requisition {
        authority: authority.to_owned(),
        procedure_number: procedure.to_owned(),
        legal_basis: basis.to_owned(),
        date: date.parse().with_context(|| format!("--requisition: the date {date:?} is not YYYY-MM-DD"))?,
    };
    let scope = match (&args.ip, &args.network, &args.user, &args.school) {
        (Some(ip), _, _, _) => Scope::Ip { ip: *ip, port: args.port },
        (_, Some(net), _, _) => Scope::Network(
            net.parse().with_context(|| format!("--network {net}: write a CIDR range like 192.0.2.0/24"))?,
        ),
        (_, _, Some(user), _) => Scope::User(user.clone()),
        (_, _, _, Some(school)) => Scope::School(school.clone()),
        _ => bail!("say whom the requisition is about: --ip IP [--port N], --network CIDR, --user ID or --school UAI"),
    };
    let now = jiff::Timestamp::now();
    let to = args.to.as_deref().map(|t| parse_time(t, "--to")).transpose()?.unwrap_or(now);
    let from = match args.from.as_deref() {
        Some(t) => parse_time(t, "--from")?,
        None => to - jiff::SignedDuration::from_hours(24 * 365),
    };
    let key = ArchiveKey::load(&args.key)?;
    let data = &args.data.data;
    let desk = Requisitions::new(&archive_dir(data), &audit_path(data), key, &args.clock_source);
    Ok((desk, requisition, RequisitionQuery { scope, from, to }))
}

#[allow(clippy::too_many_arguments)]
fn ingest(
    data: &Path,
    format: &str,
    log_format: Option<&str>,
    time_zone: &str,
    routes: Option<&Path>,
    key: Option<&Path>,
    grace: std::time::Duration,
    files: &[PathBuf],
) -> anyhow::Result<bool> {
    let (parser, ctx) = crate::parse::parser_and_context(format, log_format, time_zone)?;
    let table = match routes {
        Some(path) => retention::RouteTable::load(path)?,
        None => retention::RouteTable::default(),
    };
    let key = key.map(ArchiveKey::load).transpose()?;
    let _lock = crate::datadir::DataDir::open(data)?;
    let mut archive = Archive::open(&archive_dir(data)).context("opening the archive")?;
    let mut recorder = retention::Recorder::new(table);
    let (mut lines_total, mut archived, mut unparsed, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    for path in files {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // Ids are `file:line` with the absolute path, so a re-run on the same file replaces.
        let name = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()).display().to_string();
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(size);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(path.display().to_string());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut reader = BufReader::with_capacity(1 << 20, bar.wrap_read(file));
        let mut buf = Vec::with_capacity(1024);
        let mut line_no = 0u64;
        let mut batch = Vec::with_capacity(INGEST_BATCH);
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).with_context(|| format!("reading {}", path.display()))? == 0 {
                break;
            }
            line_no += 1;
            let end = buf.len() - usize::from(buf.ends_with(b"\n")) - usize::from(buf.ends_with(b"\r\n"));
            let line = String::from_utf8_lossy(&buf[..end]);
            match parser.parse(&line, &ctx) {
                Ok(mut event) => {
                    event.id = collector::EventId::at(&name, line_no);
                    match recorder.record(&event) {
                        Some(r) => batch.push(r),
                        None => skipped += 1,
                    }
                }
                Err(_) => unparsed += 1,
            }
            if batch.len() >= INGEST_BATCH {
                archived += batch.len() as u64;
                archive.append(&batch)?;
                archive.commit()?;
                batch.clear();
            }
        }
        archived += batch.len() as u64;
        archive.append(&batch)?;
        archive.commit()?;
        bar.finish_and_clear();
        lines_total += line_no;
        eprintln!("{}: {line_no} lines", path.display());
    }
    archive.commit()?;
    if let Some(key) = key {
        archive.set_key(key);
        let grace = jiff::SignedDuration::try_from(grace).context("--grace is too long")?;
        let sealed = archive.close_days(jiff::Timestamp::now(), grace)?;
        eprintln!("{} days sealed", sealed.len());
    }
    eprintln!(
        "{lines_total} lines: {archived} records archived, {skipped} without a client address, {unparsed} could not be parsed"
    );
    Ok(true)
}
