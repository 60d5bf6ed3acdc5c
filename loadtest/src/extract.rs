//! Taking a value (a CSRF token, an id, a redirect target) from a response for later steps:
//! by regular expression, by a CSS-like selector on HTML, by JSON pointer, or from a header.
//!
//! The selector is a deliberately small subset of CSS: one compound selector (`tag`, `#id`,
//! `.class`, `[attr]`, `[attr=value]`, combined as in `input.token[name="_csrf"]`), no
//! combinators. It scans start tags without building a DOM, which is what a login form's hidden
//! input needs, at a fraction of an HTML5 parser's cost per response.

use regex::Regex;

use crate::scenario::RawExtract;

/// A compiled extraction rule.
#[derive(Debug)]
pub(crate) enum Extractor {
    /// First capture group (else the whole match) of a regex over the body or a header value.
    Regex { re: Regex, header: Option<http::HeaderName> },
    /// An attribute (or the text) of the first element matching a selector.
    Css { selector: Selector, attribute: Option<String> },
    /// A JSON pointer into the body; strings as they are, other values as JSON text.
    Json { pointer: String },
    /// A header's whole value.
    Header { name: http::HeaderName },
}

impl Extractor {
    pub(crate) fn compile(raw: &RawExtract) -> Result<Extractor, String> {
        let header = match &raw.header {
            Some(h) => {
                Some(http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("`{h}` is not a header name"))?)
            }
            None => None,
        };
        let kinds = [raw.regex.is_some(), raw.css.is_some(), raw.json.is_some()].iter().filter(|b| **b).count();
        if kinds > 1 {
            return Err("give one of `regex`, `css` or `json`".to_owned());
        }
        if raw.attribute.is_some() && raw.css.is_none() {
            return Err("`attribute` goes with `css`".to_owned());
        }
        if header.is_some() && (raw.css.is_some() || raw.json.is_some()) {
            return Err("`header` combines only with `regex`".to_owned());
        }
        if let Some(re) = &raw.regex {
            let re = Regex::new(re).map_err(|e| format!("bad regex: {e}"))?;
            return Ok(Extractor::Regex { re, header });
        }
        if let Some(css) = &raw.css {
            let selector = Selector::parse(css)?;
            return Ok(Extractor::Css { selector, attribute: raw.attribute.clone() });
        }
        if let Some(pointer) = &raw.json {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(format!("JSON pointer `{pointer}` must start with `/` (RFC 6901), as in /article/id"));
            }
            return Ok(Extractor::Json { pointer: pointer.clone() });
        }
        match header {
            Some(name) => Ok(Extractor::Header { name }),
            None => Err("say how to extract: `regex`, `css`, `json` or `header`".to_owned()),
        }
    }

    /// Whether the rule needs the response body.
    pub(crate) fn needs_body(&self) -> bool {
        !matches!(self, Extractor::Header { .. } | Extractor::Regex { header: Some(_), .. })
    }

    /// Whether the rule reads a response header (the others read only the body).
    pub(crate) fn needs_headers(&self) -> bool {
        !self.needs_body()
    }

    /// The extracted value, or `None` when the response does not hold it.
    pub(crate) fn apply(&self, headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
        match self {
            Extractor::Header { name } => headers.get(name)?.to_str().ok().map(str::to_owned),
            Extractor::Regex { re, header } => {
                let text = match header {
                    Some(h) => headers.get(h)?.to_str().ok()?,
                    None => std::str::from_utf8(body).ok()?,
                };
                let caps = re.captures(text)?;
                caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str().to_owned())
            }
            Extractor::Css { selector, attribute } => {
                let html = String::from_utf8_lossy(body);
                selector.find(&html, attribute.as_deref())
            }
            Extractor::Json { pointer } => {
                let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                match value.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }
            }
        }
    }
}

/// One compound CSS selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    tag: Option<String>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Id(String),
    Class(String),
    Has(String),
    Equals(String, String),
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':'
}

impl Selector {
    pub(crate) fn parse(s: &str) -> Result<Selector, String> {
        let bad = |why: &str| format!("selector `{s}`: {why} (supported: tag, #id, .class, [attr], [attr=value])");
        let mut chars = s.trim().char_indices().peekable();
        let text = s.trim();
        let ident = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            let mut out = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !is_ident(c) {
                    break;
                }
                out.push(c);
                chars.next();
            }
            out
        };
        let tag = ident(&mut chars).to_ascii_lowercase();
        let mut conditions = Vec::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '#' | '.' => {
                    let name = ident(&mut chars);
                    if name.is_empty() {
                        return Err(bad(&format!("a name must follow `{c}`")));
                    }
                    conditions.push(if c == '#' { Condition::Id(name) } else { Condition::Class(name) });
                }
                '[' => {
                    let end = text[i..].find(']').ok_or_else(|| bad("`[` is not closed"))? + i;
                    let inner = &text[i + 1..end];
                    match inner.split_once('=') {
                        Some((a, v)) => {
                            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                            conditions.push(Condition::Equals(a.trim().to_ascii_lowercase(), v.to_owned()));
                        }
                        None => conditions.push(Condition::Has(inner.trim().to_ascii_lowercase())),
                    }
                    while chars.peek().is_some_and(|&(j, _)| j <= end) {
                        chars.next();
                    }
                }
                c if c.is_whitespace() || c == '>' || c == '+' || c == '~' => {
                    return Err(bad("combinators are not supported; use one element's attributes"));
                }
                _ => return Err(bad(&format!("unexpected `{c}`"))),
            }
        }
        if tag.is_empty() && conditions.is_empty() {
            return Err(bad("empty"));
        }
        Ok(Selector { tag: (!tag.is_empty()).then_some(tag), conditions })
    }

    fn matches(&self, tag: &str, attrs: &[(String, String)]) -> bool {
        if self.tag.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case(tag)) {
            return false;
        }
        let get = |name: &str| attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        self.conditions.iter().all(|c| match c {
            Condition::Id(id) => get("id") == Some(id),
            Condition::Class(class) => get("class").is_some_and(|v| v.split_ascii_whitespace().any(|c| c == class)),
            Condition::Has(a) => get(a).is_some(),
            Condition::Equals(a, v) => get(a) == Some(v),
        })
    }

    /// The attribute (or text) of the first matching element of `html`.
    pub(crate) fn find(&self, html: &str, attribute: Option<&str>) -> Option<String> {
        let mut pos = 0;
        while let Some(lt) = html[pos..].find('<') {
            let start = pos + lt + 1;
            let rest = &html[start..];
            if rest.starts_with("!--") {
                pos = start + rest.find("-->").map_or(rest.len(), |e| e + 3);
                continue;
            }
            if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
                pos = start;
                continue;
            }
            let (tag, attrs, len) = parse_start_tag(rest);
            pos = start + len;
            if self.matches(&tag, &attrs) {
                return match attribute {
                    Some(a) => {
                        let a = a.to_ascii_lowercase();
                        attrs.into_iter().find(|(k, _)| *k == a).map(|(_, v)| decode_entities(&v))
                    }
                    None => {
                        let body = &html[pos..];
                        let end = body.to_ascii_lowercase().find(&format!("</{tag}")).unwrap_or(body.len());
                        Some(decode_entities(strip_tags(&body[..end]).trim()))
                    }
                };
            }
        }
        None
    }
}

/// Parses `tag attr="v" attr2=v2 flag>` (the text after `<`): the lowercase tag name, the
/// attributes (lowercase names, raw values) and how many bytes the tag took.
fn parse_start_tag(s: &str) -> (String, Vec<(String, String)>, usize) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() && is_ident(bytes[i] as char) {
        i += 1;
    }
    let tag = s[..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return (tag, attrs, i);
        }
        if bytes[i] == b'>' {
            return (tag, attrs, i + 1);
        }
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let q = bytes[i];
                let v_start = i + 1;
                let v_end = s[v_start..].find(q as char).map_or(s.len(), |e| v_start + e);
                value = s[v_start..v_end].to_owned();
                i = (v_end + 1).min(s.len());
            } else {
                let v_start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = s[v_start..i].to_owned();
            }
        }
        if name.is_empty() {
            i += 1;
        } else {
            attrs.push((name, value));
        }
    }
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The character references a token or id realistically holds.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!doctype html><html><body>
<!-- <input name="_csrf_token" value="commented-out"> -->
<form method=post action="/login_check">
  <input type="text" name="_username">
  <input type=hidden name="_csrf_token" value="a1b2&amp;c3" class="token hidden">
  <input type='hidden' id=article_token value='zz9'/>
  <h1 class="title">Le <b>blog</b> de la classe</h1>
</form></body></html>"#;

    fn css(selector: &str, attribute: Option<&str>) -> Option<String> {
        Selector::parse(selector).unwrap().find(PAGE, attribute)
    }

    #[test]
    fn css_selectors_find_attributes_and_text() {
        assert_eq!(css(r#"input[name="_csrf_token"]"#, Some("value")).as_deref(), Some("a1b2&c3"));
        assert_eq!(css("input[name=_csrf_token]", Some("VALUE")).as_deref(), Some("a1b2&c3"));
        assert_eq!(css(".token.hidden", Some("value")).as_deref(), Some("a1b2&c3"));
        assert_eq!(css("#article_token", Some("value")).as_deref(), Some("zz9"));
        assert_eq!(css("input[type=hidden]", Some("name")).as_deref(), Some("_csrf_token"));
        assert_eq!(css("h1.title", None).as_deref(), Some("Le blog de la classe"));
        assert_eq!(css("input[name=absent]", Some("value")), None);
        assert_eq!(css("input[name=_username]", Some("value")), None);
    }

    #[test]
    fn unsupported_selectors_say_what_is_supported() {
        let e = Selector::parse("form input").unwrap_err();
        assert!(e.contains("combinators") && e.contains("[attr=value]"), "{e}");
        assert!(Selector::parse("input[name").is_err());
        assert!(Selector::parse("").is_err());
    }

    fn rule(yaml: &str) -> Result<Extractor, String> {
        Extractor::compile(&serde_yaml_ng::from_str(yaml).unwrap())
    }

    #[test]
    fn regex_json_and_header_rules() {
        let mut headers = http::HeaderMap::new();
        headers.insert("location", "/classe/blog/articles/17".parse().unwrap());
        let json = br#"{"article": {"id": 17, "slug": "sortie"}, "none": null}"#;
        let r = rule(r#"{ regex: 'value="(\w+)"' }"#).unwrap();
        assert_eq!(r.apply(&headers, br#"<input value="abc">"#).as_deref(), Some("abc"));
        let r = rule(r#"{ regex: '\d+$', header: location }"#).unwrap();
        assert!(!r.needs_body());
        assert_eq!(r.apply(&headers, b"").as_deref(), Some("17"));
        assert_eq!(rule("{ json: /article/id }").unwrap().apply(&headers, json).as_deref(), Some("17"));
        assert_eq!(rule("{ json: /article/slug }").unwrap().apply(&headers, json).as_deref(), Some("sortie"));
        assert_eq!(rule("{ json: /none }").unwrap().apply(&headers, json), None);
        assert_eq!(rule("{ json: /article/id }").unwrap().apply(&headers, b"<html>"), None);
        assert_eq!(
            rule("{ header: location }").unwrap().apply(&headers, b"").as_deref(),
            Some("/classe/blog/articles/17")
        );
        assert!(rule("{ json: article }").unwrap_err().contains("RFC 6901"));
        assert!(rule("{ regex: a, css: b }").is_err());
        assert!(rule("{ attribute: value }").is_err());
        assert!(rule("{}").unwrap_err().contains("say how"));
    }
}
