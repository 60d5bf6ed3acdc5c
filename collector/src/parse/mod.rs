//! Log parsers: pure functions from one line to one normalised [`Event`](crate::Event).
//!
//! A [`Format`] names what a source writes (from the configuration); [`Parser::new`]
//! compiles it once (an Apache `LogFormat` or Nginx `log_format` becomes a template) and
//! [`Parser::parse`] turns each line into an event, or into a [`ParseError`] that says
//! what was expected at which column, for the dead-letter file. Parsers never look at the
//! clock or the machine's zone: what a line leaves out (the year of an RFC 3164 date, the
//! zone of an Apache error log) comes from the [`ParseContext`].
//!
//! One module per format: `apache` (access + error), `nginx`, `netfilter`, `filterlog`
//! (pfSense/OPNsense), `stormshield`, and `syslog` for the envelope firewall lines arrive in
//! (and server error lines, when they go through syslog or the systemd journal).

mod apache;
mod common;
mod detect;
mod filterlog;
#[cfg(test)]
mod fixture_tests;
mod netfilter;
mod nginx;
mod parallel;
mod stormshield;
mod syslog;
mod template;

pub use common::ParseError;
pub(crate) use common::civil_from_days;
pub use parallel::lines_in_order;

use crate::Event;
use crate::event::LineEvent;
use template::Template;

/// What a parser needs to know besides the line: the time to assume for lines that carry
/// none or carry no year (RFC 3164, kernel lines), and the zone of lines written in local
/// time without an offset (Apache error log, RFC 3164).
#[derive(Debug, Clone)]
pub struct ParseContext {
    pub now: jiff::Timestamp,
    pub time_zone: jiff::tz::TimeZone,
}

/// The log format of a source, as named in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Recognise each line among the formats below (presets only for access logs).
    Auto,
    ApacheCommon,
    ApacheCombined,
    /// Debian's `vhost_combined`: `%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"`.
    ApacheVhostCombined,
    /// Any Apache `LogFormat` string.
    ApacheCustom(String),
    ApacheError,
    NginxCombined,
    /// Any Nginx `log_format` string.
    NginxCustom(String),
    NginxError,
    Netfilter,
    Filterlog,
    Stormshield,
}

const NAMES: &[&str] = &[
    "auto",
    "apache_common",
    "apache_combined",
    "apache_vhost_combined",
    "apache",
    "apache_error",
    "nginx_combined",
    "nginx",
    "nginx_error",
    "netfilter",
    "filterlog",
    "stormshield",
];

impl Format {
    /// The format named `name` in the configuration; `apache` and `nginx` take the server's
    /// own `log_format` string, the others take none.
    pub fn from_config(name: &str, log_format: Option<&str>) -> Result<Format, FormatError> {
        let fixed = match name {
            "auto" => Format::Auto,
            "apache_common" => Format::ApacheCommon,
            "apache_combined" => Format::ApacheCombined,
            "apache_vhost_combined" => Format::ApacheVhostCombined,
            "apache_error" => Format::ApacheError,
            "nginx_combined" => Format::NginxCombined,
            "nginx_error" => Format::NginxError,
            "netfilter" => Format::Netfilter,
            "filterlog" => Format::Filterlog,
            "stormshield" => Format::Stormshield,
            "apache" | "nginx" => {
                let Some(template) = log_format.filter(|t| !t.trim().is_empty()) else {
                    return Err(FormatError::MissingLogFormat { name: name.to_owned() });
                };
                return Ok(if name == "apache" {
                    Format::ApacheCustom(template.to_owned())
                } else {
                    Format::NginxCustom(template.to_owned())
                });
            }
            _ => return Err(FormatError::UnknownName { name: name.to_owned(), valid: NAMES.join(", ") }),
        };
        if log_format.is_some() {
            return Err(FormatError::UnexpectedLogFormat { name: name.to_owned() });
        }
        Ok(fixed)
    }

    /// Every name [`Format::from_config`] accepts.
    pub fn names() -> &'static [&'static str] {
        NAMES
    }
}

/// A format that cannot be used: the message names the problem and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unknown log format {name:?}: use one of {valid}")]
    UnknownName { name: String, valid: String },
    #[error(
        "log format {name:?} needs the server's format string: set `log_format` to the LogFormat / log_format it uses"
    )]
    MissingLogFormat { name: String },
    #[error(
        "log format {name:?} takes no `log_format` string: remove it, or use \"apache\" or \"nginx\" for a custom format"
    )]
    UnexpectedLogFormat { name: String },
    #[error("bad directive {directive:?} at position {position} of the log format: {reason}")]
    Directive { directive: String, position: usize, reason: String },
}

/// A compiled parser for one format. Cheap to call per line; `Send + Sync`, so one parser
/// can serve every worker.
#[derive(Debug, Clone)]
pub struct Parser {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Template(Template),
    ApacheError,
    NginxError,
    Netfilter,
    Filterlog,
    Stormshield,
    Auto(Box<detect::Auto>),
}

impl Parser {
    pub fn new(format: &Format) -> Result<Parser, FormatError> {
        let kind = match format {
            Format::Auto => Kind::Auto(Box::new(detect::Auto::new()?)),
            Format::ApacheCommon => Kind::Template(apache::compile(apache::COMMON)?),
            Format::ApacheCombined => Kind::Template(apache::compile(apache::COMBINED)?),
            Format::ApacheVhostCombined => Kind::Template(apache::compile(apache::VHOST_COMBINED)?),
            Format::ApacheCustom(f) => Kind::Template(apache::compile(f)?),
            Format::ApacheError => Kind::ApacheError,
            Format::NginxCombined => Kind::Template(nginx::compile(nginx::COMBINED)?),
            Format::NginxCustom(f) => Kind::Template(nginx::compile(f)?),
            Format::NginxError => Kind::NginxError,
            Format::Netfilter => Kind::Netfilter,
            Format::Filterlog => Kind::Filterlog,
            Format::Stormshield => Kind::Stormshield,
        };
        Ok(Parser { kind })
    }

    /// Parses one line (a trailing `\r\n` is ignored). The event's `id` is left empty for
    /// the source to assign; `original` is the line as given.
    pub fn parse(&self, line: &str, ctx: &ParseContext) -> Result<Event, ParseError> {
        self.parse_line(line, ctx).map(LineEvent::into_event)
    }

    /// Parses `line` and appends its event as ECS JSON to `out`, with `id` as its
    /// `event.id`: the very bytes [`Event::write_ecs_json`] writes of [`Parser::parse`]'s
    /// event given that id, without building the owned event (the hot path of `vigie
    /// parse`). On an error nothing is written.
    pub fn parse_to_ecs_json(
        &self,
        line: &str,
        ctx: &ParseContext,
        id: &crate::JsonId,
        out: &mut Vec<u8>,
    ) -> Result<(), ParseError> {
        let event = self.parse_line(line, ctx)?;
        crate::event::write_ecs_json_with_id(&event, Some(id), out);
        Ok(())
    }

    /// Parses one line as [`Parser::parse`] does, its text borrowed from the line where it
    /// can be: for a caller that reads a few fields of every line and keeps none (`vigie
    /// analyze`), the owned event's dozen heap strings cost more than reading them. The `id`
    /// is empty, as `parse` leaves it.
    pub fn parse_borrowed<'a>(&self, line: &'a str, ctx: &ParseContext) -> Result<LineEvent<'a>, ParseError> {
        self.parse_line(line, ctx)
    }

    /// The event of `line`, its text borrowed from the line where it can be.
    fn parse_line<'a>(&self, line: &'a str, ctx: &ParseContext) -> Result<LineEvent<'a>, ParseError> {
        match &self.kind {
            Kind::Template(t) => t.parse(line, ctx),
            Kind::ApacheError => apache::parse_error_log(line, ctx).map(LineEvent::from),
            Kind::NginxError => nginx::parse_error_log(line, ctx).map(LineEvent::from),
            Kind::Netfilter => netfilter::parse(line, ctx),
            Kind::Filterlog => filterlog::parse(line, ctx),
            Kind::Stormshield => stormshield::parse(line, ctx).map(LineEvent::from),
            Kind::Auto(auto) => auto.parse(line, ctx),
        }
    }

    /// The dataset this parser's events carry, or `None` for [`Format::Auto`] (per line).
    pub fn dataset(&self) -> Option<&'static str> {
        match &self.kind {
            Kind::Template(t) => Some(t.dataset()),
            Kind::ApacheError => Some("apache.error"),
            Kind::NginxError => Some("nginx.error"),
            Kind::Netfilter => Some(netfilter::DATASET),
            Kind::Filterlog => Some(filterlog::DATASET),
            Kind::Stormshield => Some(stormshield::DATASET),
            Kind::Auto(_) => None,
        }
    }
}

/// The context parser tests share: 7 April 2025, 12:30 UTC, in zone `tz`.
#[cfg(test)]
pub(crate) fn test_context(tz: &str) -> ParseContext {
    ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::get(tz).unwrap() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn parser_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Parser>();
    }

    #[test]
    fn a_borrowed_event_is_the_owned_one_without_copies() {
        let parser = Parser::new(&Format::ApacheCombined).unwrap();
        let ctx = test_context("UTC");
        let line = "192.0.2.1 - alice [07/Apr/2025:14:30:00 +0200] \"GET /a?b=1 HTTP/1.1\" 404 12 \"-\" \"curl/8\"";
        let borrowed = parser.parse_borrowed(line, &ctx).unwrap();
        for text in [&borrowed.url_path, &borrowed.url_query, &borrowed.user_name, &borrowed.user_agent] {
            assert!(matches!(text, Some(Cow::Borrowed(_))), "{text:?}");
        }
        assert!(matches!(borrowed.original, Cow::Borrowed(l) if l == line));
        assert_eq!(borrowed.into_event(), parser.parse(line, &ctx).unwrap());
    }

    #[test]
    fn every_name_is_accepted() {
        for name in Format::names() {
            let template = matches!(*name, "apache" | "nginx").then_some("%h");
            let format = Format::from_config(name, template).unwrap_or_else(|e| panic!("{name}: {e}"));
            if *name != "nginx" {
                Parser::new(&format).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    #[test]
    fn config_mistakes_say_what_to_do() {
        let err = Format::from_config("apache2", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown log format \"apache2\": use one of auto, apache_common, apache_combined, apache_vhost_combined, apache, apache_error, nginx_combined, nginx, nginx_error, netfilter, filterlog, stormshield"
        );
        let err = Format::from_config("apache", None).unwrap_err();
        assert!(err.to_string().contains("set `log_format`"), "{err}");
        let err = Format::from_config("netfilter", Some("%h")).unwrap_err();
        assert!(err.to_string().contains("remove it"), "{err}");
        assert_eq!(
            Format::from_config("nginx", Some("$remote_addr")).unwrap(),
            Format::NginxCustom("$remote_addr".to_owned())
        );
        let err = Parser::new(&Format::ApacheCustom("%h %Q".to_owned())).unwrap_err();
        assert!(matches!(err, FormatError::Directive { position: 4, .. }), "{err:?}");
    }
}
