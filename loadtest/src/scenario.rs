//! Scenario files: YAML read into raw structs, then compiled (templates split, regexes built,
//! durations parsed, URLs checked) before any virtual user starts.
//!
//! ```yaml
//! name: ent-blog
//! base_url: http://127.0.0.1:8080
//! variables: { password: secret }
//! headers: { user-agent: vigie-loadtest }
//! steps:
//!   - name: login page
//!     url: /login
//!     extract:
//!       csrf: { css: 'input[name="_csrf_token"]', attribute: value }
//!   - name: login
//!     method: POST
//!     url: /login_check
//!     form: { _username: "eleve{{vu}}", _password: "{{password}}", _csrf_token: "{{csrf}}" }
//!     expect_status: [302]
//!     think: 1s..3s
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use http::Method;
use serde::Deserialize;

use crate::extract::Extractor;

/// A scenario that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read the scenario {path}: {source}")]
    Read {
        /// The scenario file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not have the expected shape.
    #[error("{path}: {message}")]
    Syntax {
        /// The scenario file.
        path: String,
        /// serde's message, with line and column.
        message: String,
    },
    /// The YAML is well-formed but some values are wrong; one line per problem.
    #[error("{path}: invalid scenario:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The scenario file.
        path: String,
        /// Each problem, naming the step and field and how to fix it.
        problems: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    /// Shown in the report.
    #[serde(default)]
    name: Option<String>,
    /// Prefix of every step URL that starts with `/`.
    #[serde(default)]
    base_url: Option<String>,
    /// Values available to every template as `{{name}}`.
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// Headers sent with every request (a step's own headers win).
    #[serde(default)]
    headers: serde_yaml_ng::Mapping,
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: serde_yaml_ng::Mapping,
    #[serde(default)]
    form: serde_yaml_ng::Mapping,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    expect_status: Vec<u16>,
    #[serde(default)]
    think: Option<String>,
    #[serde(default)]
    extract: BTreeMap<String, RawExtract>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// How a value is taken from a response.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtract {
    /// A regular expression on the body (or on `header`'s value); the first capture group, else
    /// the whole match.
    #[serde(default)]
    pub(crate) regex: Option<String>,
    /// A CSS-like selector on the body: `tag`, `#id`, `.class`, `[attr]`, `[attr=value]`, combined.
    #[serde(default)]
    pub(crate) css: Option<String>,
    /// With `css`: the attribute to read; the element's text when absent.
    #[serde(default)]
    pub(crate) attribute: Option<String>,
    /// A JSON pointer (RFC 6901) into a JSON body, such as `/article/id`.
    #[serde(default)]
    pub(crate) json: Option<String>,
    /// A response header (such as `location`); with `regex`, the regex applies to its value.
    #[serde(default)]
    pub(crate) header: Option<String>,
}

/// A compiled scenario, ready for virtual users.
#[derive(Debug)]
pub struct Scenario {
    /// The scenario's name, for the report.
    pub name: String,
    pub(crate) base_url: Option<String>,
    pub(crate) variables: Vec<(String, String)>,
    pub(crate) steps: Vec<Step>,
}

/// One request of the scenario.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) method: Method,
    pub(crate) url: Template,
    pub(crate) headers: Vec<(http::HeaderName, Template)>,
    pub(crate) body: Option<Body>,
    pub(crate) expect_status: Vec<u16>,
    pub(crate) think: Option<Think>,
    pub(crate) extract: Vec<(String, Extractor)>,
}

/// A request body.
#[derive(Debug)]
pub(crate) enum Body {
    /// `application/x-www-form-urlencoded` fields, values templated.
    Form(Vec<(String, Template)>),
    /// A raw templated body (set `content-type` in the step's headers).
    Raw(Template),
}

/// A pause after a step: fixed, or uniform in a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Think {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

/// A string with `{{name}}` placeholders, split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

impl Template {
    pub(crate) fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("`{s}`: a `{{{{` is not closed by `}}}}`"))?;
            let name = after[..end].trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("`{s}`: `{{{{{name}}}}}` is not a variable name (letters, digits, _ and -)"));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The text when the template has no variable: rendered once for every request.
    pub(crate) fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// The variables this template reads.
    pub(crate) fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The template with each variable replaced by `lookup`'s value; `Err(name)` for the first
    /// variable that has no value.
    pub(crate) fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(name) => out.push_str(lookup(name).ok_or_else(|| name.clone())?),
            }
        }
        Ok(out)
    }
}

/// Parses `90s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let value: f64 = number.parse().map_err(|_| format!("`{s}` is not a duration (write 500ms, 2s, 5m or 1h)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{s}` is not a duration (write 500ms, 2s, 5m or 1h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_think(s: &str) -> Result<Think, String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (min, max) = (parse_duration(a)?, parse_duration(b)?);
            if min > max {
                return Err(format!("`{s}`: the range's start is after its end"));
            }
            Ok(Think { min, max })
        }
        None => {
            let d = parse_duration(s)?;
            Ok(Think { min: d, max: d })
        }
    }
}

fn string_pairs(map: &serde_yaml_ng::Mapping, what: &str, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in map {
        let key = match k {
            serde_yaml_ng::Value::String(s) => s.clone(),
            other => {
                problems.push(format!("{what}: the key {other:?} must be a string"));
                continue;
            }
        };
        let value = match v {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            _ => {
                problems.push(format!("{what}: `{key}` must be a string, a number or a boolean"));
                continue;
            }
        };
        out.push((key, value));
    }
    out
}

/// Variables every virtual user has without declaring them.
pub(crate) const BUILTIN_VARS: [&str; 2] = ["vu", "iteration"];

impl Scenario {
    /// Reads and compiles a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Compiles a scenario from its YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = serde_yaml_ng::from_str(text)
            .map_err(|e| ScenarioError::Syntax { path: origin.to_owned(), message: e.to_string() })?;
        let mut problems = Vec::new();
        if raw.steps.is_empty() {
            problems.push("`steps` is empty: give at least one step with a `url`".to_owned());
        }
        let base_url = raw.base_url.map(|b| b.trim_end_matches('/').to_owned());
        if let Some(base) = &base_url
            && let Err(e) = check_absolute(base)
        {
            problems.push(format!("base_url: {e}"));
        }
        let common_headers = string_pairs(&raw.headers, "headers", &mut problems);
        // Variables known so far: declared ones, built-ins, then each step's extractions.
        let mut known: Vec<String> = raw.variables.keys().cloned().collect();
        known.extend(BUILTIN_VARS.iter().map(|s| (*s).to_owned()));
        let mut steps = Vec::new();
        for (i, rs) in raw.steps.into_iter().enumerate() {
            let label = format!("step {} ({})", i + 1, rs.name.as_deref().unwrap_or(&rs.url));
            let template = |s: &str, field: &str, problems: &mut Vec<String>| -> Template {
                match Template::parse(s) {
                    Ok(t) => {
                        for v in t.vars() {
                            if !known.iter().any(|k| k == v) {
                                problems.push(format!(
                                    "{label}: {field} uses `{{{{{v}}}}}`, which no earlier step extracts and `variables` does not declare"
                                ));
                            }
                        }
                        t
                    }
                    Err(e) => {
                        problems.push(format!("{label}: {field}: {e}"));
                        Template { parts: Vec::new() }
                    }
                }
            };
            let method = match Method::from_bytes(rs.method.to_ascii_uppercase().as_bytes()) {
                Ok(m) => m,
                Err(_) => {
                    problems.push(format!("{label}: method `{}` is not an HTTP method", rs.method));
                    Method::GET
                }
            };
            let url = template(&rs.url, "url", &mut problems);
            if !rs.url.starts_with('{') {
                if rs.url.starts_with('/') {
                    if base_url.is_none() {
                        problems
                            .push(format!("{label}: url `{}` is relative: set `base_url` (or pass --target)", rs.url));
                    }
                } else if let Err(e) = check_absolute(&rs.url) {
                    problems.push(format!("{label}: url: {e}"));
                }
            }
            let mut headers = Vec::new();
            let step_headers = string_pairs(&rs.headers, &format!("{label}: headers"), &mut problems);
            let names: Vec<String> = step_headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
            let inherited = common_headers
                .iter()
                .filter(|(k, _)| !names.contains(&k.to_ascii_lowercase()))
                .cloned()
                .collect::<Vec<_>>();
            for (k, v) in inherited.into_iter().chain(step_headers) {
                match http::HeaderName::from_bytes(k.as_bytes()) {
                    Ok(name) => headers.push((name, template(&v, &format!("header `{k}`"), &mut problems))),
                    Err(_) => problems.push(format!("{label}: `{k}` is not a valid header name")),
                }
            }
            let form = string_pairs(&rs.form, &format!("{label}: form"), &mut problems);
            let body = match (form.is_empty(), rs.body) {
                (false, Some(_)) => {
                    problems.push(format!("{label}: give either `form` or `body`, not both"));
                    None
                }
                (false, None) => Some(Body::Form(
                    form.into_iter()
                        .map(|(k, v)| {
                            let t = template(&v, &format!("form field `{k}`"), &mut problems);
                            (k, t)
                        })
                        .collect(),
                )),
                (true, Some(b)) => Some(Body::Raw(template(&b, "body", &mut problems))),
                (true, None) => None,
            };
            let think = rs.think.as_deref().and_then(|t| match parse_think(t) {
                Ok(t) => Some(t),
                Err(e) => {
                    problems.push(format!("{label}: think: {e}"));
                    None
                }
            });
            for s in &rs.expect_status {
                if !(100..=599).contains(s) {
                    problems.push(format!("{label}: expect_status {s} is not an HTTP status (100 to 599)"));
                }
            }
            let mut extract = Vec::new();
            for (name, raw) in rs.extract {
                if BUILTIN_VARS.contains(&name.as_str()) {
                    problems.push(format!("{label}: extract `{name}` would hide the built-in variable; rename it"));
                }
                match Extractor::compile(&raw) {
                    Ok(e) => extract.push((name.clone(), e)),
                    Err(e) => problems.push(format!("{label}: extract `{name}`: {e}")),
                }
                known.push(name);
            }
            steps.push(Step {
                name: rs.name.unwrap_or_else(|| format!("{} {}", method, rs.url)),
                method,
                url,
                headers,
                body,
                expect_status: rs.expect_status,
                think,
                extract,
            });
        }
        let mut seen = Vec::new();
        for s in &steps {
            if seen.contains(&&s.name) {
                problems.push(format!("two steps are named `{}`: step names must be unique in the report", s.name));
            }
            seen.push(&s.name);
        }
        if !problems.is_empty() {
            return Err(ScenarioError::Invalid { path: origin.to_owned(), problems });
        }
        Ok(Scenario {
            name: raw.name.unwrap_or_else(|| origin.to_owned()),
            base_url,
            variables: raw.variables.into_iter().collect(),
            steps,
        })
    }

    /// A one-step scenario: `GET url`, as `oha URL` or `wrk URL` would do.
    pub fn single_get(url: &str) -> Result<Scenario, ScenarioError> {
        check_absolute(url).map_err(|e| ScenarioError::Invalid { path: "--url".into(), problems: vec![e] })?;
        Ok(Scenario {
            name: format!("GET {url}"),
            base_url: None,
            variables: Vec::new(),
            steps: vec![Step {
                name: format!("GET {url}"),
                method: Method::GET,
                url: Template { parts: vec![Part::Literal(url.to_owned())] },
                headers: Vec::new(),
                body: None,
                expect_status: Vec::new(),
                think: None,
                extract: Vec::new(),
            }],
        })
    }

    /// Replaces `base_url` (the `--target` option).
    pub fn set_base_url(&mut self, base: &str) -> Result<(), String> {
        check_absolute(base)?;
        self.base_url = Some(base.trim_end_matches('/').to_owned());
        Ok(())
    }

    /// Drops every think time (`--no-think`).
    pub fn without_think_time(&mut self) {
        for s in &mut self.steps {
            s.think = None;
        }
    }

    /// The step names, in order.
    pub fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name.clone()).collect()
    }

    /// Every origin (`scheme://host:port`) the scenario names literally: the base URL and each
    /// absolute step URL whose host is not a variable. Checked against the allow-list at start;
    /// URLs built from variables are checked again at each request.
    pub fn literal_origins(&self) -> Vec<crate::client::Origin> {
        let mut out = Vec::new();
        let mut push = |u: &str| {
            if let Ok(o) = crate::client::Origin::from_url(u)
                && !out.contains(&o)
            {
                out.push(o);
            }
        };
        if let Some(b) = &self.base_url {
            push(b);
        }
        for s in &self.steps {
            if let Some(Part::Literal(l)) = s.url.parts.first()
                && !l.starts_with('/')
            {
                let host_end = l.find("://").map(|i| i + 3).and_then(|i| l[i..].find('/').map(|j| i + j));
                if host_end.is_some() || s.url.parts.len() == 1 {
                    push(l);
                }
            }
        }
        out
    }
}

fn check_absolute(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}`: the URL must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_and_render() {
        let t = Template::parse("/u/{{vu}}/x{{ id }}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["vu", "id"]);
        let r = t.render(|n| match n {
            "vu" => Some("7"),
            "id" => Some("42"),
            _ => None,
        });
        assert_eq!(r.unwrap(), "/u/7/x42");
        assert_eq!(t.render(|_| None), Err("vu".to_owned()));
        assert!(Template::parse("/a/{{oops").is_err());
        assert!(Template::parse("/a/{{a b}}").is_err());
    }

    #[test]
    fn durations_and_think_ranges() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 days").is_err());
        assert_eq!(parse_think("1s..3s").unwrap(), Think { min: Duration::from_secs(1), max: Duration::from_secs(3) });
        assert!(parse_think("3s..1s").is_err());
    }

    #[test]
    fn every_problem_is_reported_with_its_step() {
        let text = r#"
steps:
  - name: a
    url: /x/{{token}}
    method: "GE T"
    think: forever
  - name: a
    url: ftp://example.org/
    extract:
      t: { regex: "(" }
"#;
        let err = Scenario::parse(text, "s.yml").unwrap_err().to_string();
        for needle in [
            "step 1 (a): url uses `{{token}}`",
            "url `/x/{{token}}` is relative: set `base_url`",
            "method `GE T`",
            "step 1 (a): think:",
            "step 2 (a): url: `ftp://example.org/`: the URL must start with http://",
            "extract `t`:",
            "two steps are named `a`",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_line() {
        let err = Scenario::parse("steps:\n  - url: http://h/\n    thinktime: 1s\n", "s.yml").unwrap_err().to_string();
        assert!(err.contains("thinktime") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn extracted_values_are_known_to_later_steps_and_headers_merge() {
        let text = r#"
base_url: http://127.0.0.1:9/
headers: { user-agent: a, accept: text/html }
steps:
  - url: /login
    extract: { csrf: { regex: 'name="t" value="([^"]+)"' } }
  - url: /post
    method: post
    headers: { Accept: application/json }
    form: { t: "{{csrf}}", n: 3 }
"#;
        let s = Scenario::parse(text, "s.yml").unwrap();
        assert_eq!(s.base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s.steps[1].method, Method::POST);
        let names: Vec<_> = s.steps[1].headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["user-agent", "accept"]);
        assert_eq!(s.steps[0].name, "GET /login");
        assert_eq!(s.literal_origins().len(), 1);
    }
}
