//! `vigie analyze`: replay log files through the rules offline (like `fail2ban-regex`), and
//! `vigie analyze --test DIR`: run the tests that sit beside rule files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use collector::parse::{ParseContext, Parser};

/// Loads the rules of `dir`, or the default rules built into the binary.
pub(crate) fn load_rules(dir: Option<&Path>) -> anyhow::Result<analyzer::RuleSet> {
    match dir {
        Some(dir) => {
            analyzer::RuleSet::load_dir(dir).with_context(|| format!("loading the rules in {}", dir.display()))
        }
        None => {
            let tmp = std::env::temp_dir().join(format!("vigie-rules-{}", std::process::id()));
            let result = (|| {
                crate::demo::write_default_rules(&tmp)?;
                analyzer::RuleSet::load_dir(&tmp).context("loading the built-in rules")
            })();
            let _ = std::fs::remove_dir_all(&tmp);
            result
        }
    }
}

/// What `vigie analyze` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Detections, after windows and suppression: what alerting would receive.
    Detections,
    /// Every line some rule's conditions match, before windows — what `fail2ban-regex`
    /// calls matched lines.
    Matches,
}

/// Replays `files` (standard input when empty); one JSON object per detection (or matched
/// line) on `out`.
pub(crate) fn run(
    mode: Mode,
    rules: Option<&Path>,
    format: &str,
    log_format: Option<&str>,
    time_zone: &str,
    files: &[PathBuf],
    out: impl Write,
) -> anyhow::Result<analyzer::ReplaySummary> {
    let (parser, ctx) = crate::parse::parser_and_context(format, log_format, time_zone)?;
    let rules = Arc::new(load_rules(rules)?);
    if mode == Mode::Matches {
        return matches(&rules, &parser, &ctx, files, out);
    }
    let mut engine = analyzer::Engine::new(rules);
    let mut out = BufWriter::new(out);
    let mut total = analyzer::ReplaySummary::default();
    let mut write_error = None;
    let mut emit = |d: &analyzer::Detection, line: u64| {
        if write_error.is_none()
            && let Err(e) = serde_json::to_writer(&mut out, &analyzer::detection_json(d, line))
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        {
            write_error = Some(e);
        }
    };
    if files.is_empty() {
        let stdin = BufReader::with_capacity(1 << 20, std::io::stdin());
        let s = analyzer::analyze_reader("-", stdin, &parser, &ctx, &mut engine, &mut emit)
            .context("reading standard input")?;
        summary("-", &s);
        total += s;
    }
    for path in files {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let name = path.display().to_string();
        let reader = BufReader::with_capacity(1 << 20, file);
        let s = analyzer::analyze_reader(&name, reader, &parser, &ctx, &mut engine, &mut emit)
            .with_context(|| format!("reading {}", path.display()))?;
        summary(&name, &s);
        total += s;
    }
    if let Some(e) = write_error {
        return Err(e).context("writing the detections");
    }
    out.flush().context("writing the detections")?;
    Ok(total)
}

fn matches(
    rules: &analyzer::RuleSet,
    parser: &Parser,
    ctx: &ParseContext,
    files: &[PathBuf],
    out: impl Write,
) -> anyhow::Result<analyzer::ReplaySummary> {
    let mut out = BufWriter::new(out);
    let mut total = analyzer::ReplaySummary::default();
    let mut one = |name: &str, reader: &mut dyn std::io::BufRead| -> anyhow::Result<()> {
        let mut s = analyzer::ReplaySummary::default();
        let mut write_error = None;
        s.lines = analyzer::parse_lines(name, reader, parser, ctx, |n, _, parsed| {
            let Ok(event) = parsed else {
                s.unparsed += 1;
                return;
            };
            s.parsed += 1;
            let matched = rules.matching_lines(&event);
            if matched.is_empty() || write_error.is_some() {
                return;
            }
            s.detections += 1;
            let json = serde_json::json!({
                "line": n,
                "@timestamp": event.timestamp.to_string(),
                "source": { "ip": event.source_ip.map(|ip| ip.to_string()) },
                "matches": matched.iter().map(|m| serde_json::json!({ "rule": m.rule, "key": m.key })).collect::<Vec<_>>(),
            });
            if let Err(e) =
                serde_json::to_writer(&mut out, &json).map_err(std::io::Error::from).and_then(|()| out.write_all(b"\n"))
            {
                write_error = Some(e);
            }
        })
        .with_context(|| format!("reading {name}"))?;
        if let Some(e) = write_error {
            return Err(e).context("writing the matches");
        }
        eprintln!(
            "{name}: {} lines, {} parsed, {} could not be parsed, {} matched",
            s.lines, s.parsed, s.unparsed, s.detections
        );
        total += s;
        Ok(())
    };
    if files.is_empty() {
        one("-", &mut std::io::stdin().lock())?;
    }
    for path in files {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        one(&path.display().to_string(), &mut BufReader::with_capacity(1 << 20, file))?;
    }
    out.flush().context("writing the matches")?;
    Ok(total)
}

fn summary(name: &str, s: &analyzer::ReplaySummary) {
    eprintln!(
        "{name}: {} lines, {} parsed, {} could not be parsed, {} detections",
        s.lines, s.parsed, s.unparsed, s.detections
    );
}

/// Runs the rule tests of `dir`; Ok(true) when they all pass.
pub(crate) fn test(dir: &Path) -> anyhow::Result<bool> {
    let report = analyzer::run_rule_tests(dir).with_context(|| format!("loading the rules in {}", dir.display()))?;
    print!("{report}");
    Ok(report.is_success())
}
