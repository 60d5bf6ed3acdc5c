//! `vigie parse`: one-shot parsing of log files (or standard input) into ECS JSON lines.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use collector::parse::{Format, ParseContext, Parser};

/// What `vigie parse` read from one input.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) lines: u64,
    pub(crate) parsed: u64,
    pub(crate) errors: u64,
}

/// Parses every line of every input (standard input when `files` is empty) and writes one
/// JSON object per line to `out`: the event, or `{"error": {...}}`. Bad lines never stop the
/// run; only I/O errors do.
pub(crate) fn run(
    format: &str,
    log_format: Option<&str>,
    time_zone: &str,
    files: &[PathBuf],
    out: impl Write,
) -> anyhow::Result<Summary> {
    let (parser, ctx) = parser_and_context(format, log_format, time_zone)?;
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut total = Summary::default();
    if files.is_empty() {
        let stdin = BufReader::with_capacity(1 << 20, std::io::stdin());
        let s = parse_stream(stdin, "-", &parser, &ctx, &mut out).context("reading standard input")?;
        report("-", s);
        add(&mut total, s);
    }
    for path in files {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let progress = progress_bar(size, path);
        let reader = BufReader::with_capacity(1 << 20, progress.wrap_read(file));
        let name = path.display().to_string();
        let s = parse_stream(reader, &name, &parser, &ctx, &mut out)
            .with_context(|| format!("reading {}", path.display()))?;
        progress.finish_and_clear();
        report(&name, s);
        add(&mut total, s);
    }
    out.flush().context("writing the output")?;
    Ok(total)
}

/// The parser and context the offline commands (`parse`, `analyze`) share, from their flags.
pub(crate) fn parser_and_context(
    format: &str,
    log_format: Option<&str>,
    time_zone: &str,
) -> anyhow::Result<(Parser, ParseContext)> {
    let format = Format::from_config(format, log_format)
        .with_context(|| format!("--format {format}: valid formats are {}", Format::names().join(", ")))?;
    let parser = Parser::new(&format).context("compiling the log format")?;
    let time_zone = jiff::tz::TimeZone::get(time_zone)
        .with_context(|| format!("--time-zone {time_zone}: use an IANA name such as Europe/Paris"))?;
    Ok((parser, ParseContext { now: jiff::Timestamp::now(), time_zone }))
}

fn add(total: &mut Summary, s: Summary) {
    total.lines += s.lines;
    total.parsed += s.parsed;
    total.errors += s.errors;
}

fn report(name: &str, s: Summary) {
    eprintln!("{name}: {} lines, {} parsed, {} could not be parsed", s.lines, s.parsed, s.errors);
}

/// A progress bar on standard error for files over 64 MiB when a person is watching.
fn progress_bar(size: u64, path: &Path) -> indicatif::ProgressBar {
    if size < 64 << 20 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(path.display().to_string());
    bar
}

/// What one chunk of lines became: its JSON lines and its counts.
struct Rendered {
    json: Vec<u8>,
    summary: Summary,
    /// The current line's event id, as the JSON writer puts it: the file's name escaped once
    /// per chunk, the line number per line.
    id: Option<collector::JsonId>,
}

/// JSON buffers of chunks already written, emptied, for the next chunks: a fresh buffer per
/// chunk had the allocator hand its pages back to the kernel and the kernel zero new ones
/// (about 5 % of `vigie parse`).
static SPARE_JSON: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
/// More than the chunks in flight at once (two per worker, up to 16 workers).
const SPARE_JSON_MAX: usize = 40;

impl Default for Rendered {
    /// A spare buffer, or room for a chunk's JSON (about three and a half times its 256 KiB
    /// of log lines), so the buffer is not copied over and over as it grows.
    fn default() -> Self {
        let spare = SPARE_JSON.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        Rendered { json: spare.unwrap_or_else(|| Vec::with_capacity(1 << 20)), summary: Summary::default(), id: None }
    }
}

impl Rendered {
    /// Gives the emptied buffer back for a next chunk.
    fn recycle(mut self) {
        self.json.clear();
        let mut spare = SPARE_JSON.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if spare.len() < SPARE_JSON_MAX {
            spare.push(self.json);
        }
    }
}

/// Parses `reader` on every core (see [`collector::parse::lines_in_order`]) and writes the
/// JSON lines in input order: the output is what a single thread would write. Each event is
/// written by [`Parser::parse_to_ecs_json`], as [`collector::Event::write_ecs_json`] would
/// write it with the id `<name>:<line>`, without building it.
fn parse_stream(
    reader: impl BufRead + Send,
    name: &str,
    parser: &Parser,
    ctx: &ParseContext,
    out: &mut impl Write,
) -> std::io::Result<Summary> {
    let mut total = Summary::default();
    let mut write_error = None;
    collector::parse::lines_in_order(
        reader,
        |acc: &mut Rendered, n, line| {
            acc.summary.lines += 1;
            let id = acc.id.get_or_insert_with(|| collector::JsonId::new(name));
            id.set_line(n);
            match parser.parse_to_ecs_json(line, ctx, id, &mut acc.json) {
                Ok(()) => {
                    acc.summary.parsed += 1;
                }
                Err(e) => {
                    acc.summary.errors += 1;
                    let error = serde_json::json!({ "error": { "message": e.to_string(), "line": n, "file": name } });
                    serde_json::to_writer(&mut acc.json, &error).expect("writing to memory cannot fail");
                }
            }
            acc.json.push(b'\n');
        },
        |acc| {
            add(&mut total, acc.summary);
            let written = out.write_all(&acc.json);
            acc.recycle();
            match written {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(e) => {
                    write_error = Some(e);
                    std::ops::ControlFlow::Break(())
                }
            }
        },
    )?;
    match write_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Reads everything, for tests.
#[cfg(test)]
fn parse_text(format: &str, text: &str) -> (Summary, Vec<serde_json::Value>) {
    let parser = Parser::new(&Format::from_config(format, None).unwrap()).unwrap();
    let ctx = ParseContext { now: jiff::Timestamp::now(), time_zone: jiff::tz::TimeZone::UTC };
    let mut out = Vec::new();
    let summary = parse_stream(text.as_bytes(), "t", &parser, &ctx, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    (summary, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_lines_each_give_one_object() {
        let text = "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /a.gif?x=1 HTTP/1.0\" 200 2326 \"-\" \"curl/8\"\n\
                    not a log line\r\n\
                    ::1 - - [10/Oct/2000:13:55:37 -0700] \"GET / HTTP/1.1\" 304 - \"-\" \"-\"";
        let (summary, objects) = parse_text("apache_combined", text);
        assert_eq!(summary, Summary { lines: 3, parsed: 2, errors: 1 });
        assert_eq!(objects[0]["source"]["ip"], "127.0.0.1");
        assert_eq!(objects[0]["user"]["name"], "frank");
        assert_eq!(objects[0]["url"]["original"], "/a.gif?x=1");
        assert_eq!(objects[0]["@timestamp"], "2000-10-10T20:55:36Z");
        assert_eq!(objects[1]["error"]["line"], 2);
        assert!(objects[1]["error"]["message"].as_str().unwrap().contains("column"), "{}", objects[1]);
        assert_eq!(objects[2]["source"]["ip"], "::1");
    }
}
