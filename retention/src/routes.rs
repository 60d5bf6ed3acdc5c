//! The route → operation table: how a request's path becomes the nature of the operation
//! (connexion, création, suppression...) and, for content-changing routes, a content id.
//!
//! The path is only *read* here; the archive keeps the operation and the content id, never
//! the path, the query string or the referrer (L34-1 CPCE). The default table, for Beneylu
//! School 3, is `routes/beneylu3.toml` (its header names the source files it was derived from).

use std::path::Path;

use serde::Deserialize;

use crate::error::ArchiveError;

/// The shipped table for Beneylu School 3.
pub const BENEYLU3_ROUTES: &str = include_str!("../routes/beneylu3.toml");

/// The table format this code reads.
const ROUTES_FORMAT_VERSION: u32 = 1;

/// A content identifier longer than this, or with other characters than letters, digits,
/// `-`, `_` and `.`, is not an identifier (it could be free text): it is not kept.
const MAX_CONTENT_ID_LEN: usize = 80;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    format_version: u32,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    #[serde(default)]
    methods: Vec<String>,
    operation: String,
    content: Option<String>,
    content_param: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
struct Route {
    segments: Vec<Segment>,
    methods: Vec<String>,
    operation: String,
    content: Option<String>,
    /// Index of the segment holding the content id.
    content_segment: Option<usize>,
}

/// What the table says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The nature of the operation, in French (`connexion`, `création`...).
    pub name: String,
    /// `kind:id` of the content created or changed, when the route names it.
    pub content_id: Option<String>,
    /// Whether a route of the table matched (else the name comes from the method alone).
    pub matched: bool,
}

/// A compiled route table.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl Default for RouteTable {
    /// The Beneylu School 3 table.
    fn default() -> Self {
        RouteTable::parse(BENEYLU3_ROUTES, Path::new("routes/beneylu3.toml")).expect("the shipped route table is valid")
    }
}

impl RouteTable {
    /// Reads a table from a TOML file.
    pub fn load(path: &Path) -> Result<RouteTable, ArchiveError> {
        let text = std::fs::read_to_string(path).map_err(ArchiveError::io(path))?;
        RouteTable::parse(&text, path)
    }

    /// Parses and checks a table; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<RouteTable, ArchiveError> {
        let bad = |reason: String| ArchiveError::BadRouteTable { path: origin.to_owned(), reason };
        let raw: RawTable = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if raw.format_version != ROUTES_FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {} is not the {ROUTES_FORMAT_VERSION} this vigie reads",
                raw.format_version
            )));
        }
        let mut routes = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.into_iter().enumerate() {
            let n = i + 1;
            if !r.path.starts_with('/') {
                return Err(bad(format!("route {n}: path `{}` must start with '/'", r.path)));
            }
            if r.operation.trim().is_empty() {
                return Err(bad(format!("route {n} ({}): operation is empty", r.path)));
            }
            let segments: Vec<Segment> = split(&r.path)
                .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_lowercase()),
                })
                .collect();
            let content_segment = match &r.content_param {
                None => None,
                Some(p) => {
                    let at = segments.iter().position(|s| *s == Segment::Param(p.clone()));
                    if at.is_none() {
                        return Err(bad(format!(
                            "route {n} ({}): content_param `{p}` is not a {{{p}}} segment of the path",
                            r.path
                        )));
                    }
                    if r.content.is_none() {
                        return Err(bad(format!("route {n} ({}): content_param needs `content` (its kind)", r.path)));
                    }
                    at
                }
            };
            routes.push(Route {
                segments,
                methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                operation: r.operation,
                content: r.content,
                content_segment,
            });
        }
        Ok(RouteTable { routes })
    }

    /// The operation of a request with `method` on `path` (the query string, if present, is
    /// ignored; it is never kept).
    pub fn operation(&self, method: Option<&str>, path: &str) -> Operation {
        let method = method.map(str::to_ascii_uppercase);
        let path = path.split(['?', '#']).next().unwrap_or("");
        let segments: Vec<&str> = split(path).collect();
        for route in &self.routes {
            if !route.methods.is_empty() && !method.as_ref().is_some_and(|m| route.methods.contains(m)) {
                continue;
            }
            if route.segments.len() != segments.len() {
                continue;
            }
            let matches = route.segments.iter().zip(&segments).all(|(t, s)| match t {
                Segment::Literal(l) => l.eq_ignore_ascii_case(s) || l.eq_ignore_ascii_case(strip_php(s)),
                Segment::Param(_) => true,
            });
            if !matches {
                continue;
            }
            let content_id = match (&route.content, route.content_segment) {
                (Some(kind), Some(at)) => identifier(segments[at]).map(|id| format!("{kind}:{id}")),
                (Some(kind), None) => Some(kind.clone()),
                _ => None,
            };
            return Operation { name: route.operation.clone(), content_id, matched: true };
        }
        let name = match method.as_deref() {
            Some("GET" | "HEAD" | "OPTIONS") | None => "consultation",
            Some(_) => "requête",
        };
        Operation { name: name.to_owned(), content_id: None, matched: false }
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// `/login_check.php` names the same route as `/login_check` (front controllers).
fn strip_php(s: &str) -> &str {
    s.strip_suffix(".php").unwrap_or(s)
}

/// A segment that looks like an identifier (not free text), percent-encoding refused.
fn identifier(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= MAX_CONTENT_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, path: &str, expected: &str, content: Option<&str>) {
        let op = RouteTable::default().operation(Some(method), path);
        assert_eq!((op.name.as_str(), op.content_id.as_deref()), (expected, content), "{method} {path}");
    }

    #[test]
    fn beneylu_routes_name_their_operation() {
        check("POST", "/login_check", "connexion", None);
        check("GET", "/login_check", "consultation", None);
        check("GET", "/logout", "déconnexion", None);
        check("POST", "/blog/gestion/nouvel-article/terminer", "création", Some("blog_article"));
        check(
            "POST",
            "/blog/gestion/article/sortie-au-musee/editer",
            "modification",
            Some("blog_article:sortie-au-musee"),
        );
        check("GET", "/blog/gestion/article/sortie-au-musee/editer", "consultation", None);
        check("POST", "/blog/gestion/article/1234/supprimer", "suppression", Some("blog_article:1234"));
        check("GET", "/blog/gestion/article/1234/supprimer/", "suppression", Some("blog_article:1234"));
        check("POST", "/messagerie/envoie-message", "envoi de message", Some("message"));
        check("POST", "/cas/login", "connexion", None);
        check("GET", "/classe/eleves/dupont", "consultation", None);
        check("DELETE", "/anything", "requête", None);
    }

    #[test]
    fn a_content_id_that_is_not_an_identifier_is_dropped() {
        check("POST", "/blog/gestion/article/un%20titre%20libre/editer", "modification", None);
    }

    #[test]
    fn bad_tables_are_refused_with_the_route_named() {
        let err = |text: &str| RouteTable::parse(text, Path::new("r.toml")).unwrap_err().to_string();
        let e = err("format_version = 1\n[[route]]\npath = \"a/b\"\noperation = \"x\"\n");
        assert!(e.contains("r.toml") && e.contains("route 1") && e.contains("start with '/'"), "{e}");
        let e = err(
            "format_version = 1\n[[route]]\npath = \"/a/{id}\"\noperation = \"x\"\ncontent = \"k\"\ncontent_param = \"ident\"\n",
        );
        assert!(e.contains("content_param `ident`"), "{e}");
        let e = err("format_version = 2\n");
        assert!(e.contains("format_version 2"), "{e}");
        let e = err("format_version = 1\n[[route]]\npath = \"/a\"\noperation = \"x\"\nurl = \"y\"\n");
        assert!(e.contains("unknown field"), "{e}");
    }
}
