//! One cookie jar per virtual user: the subset of RFC 6265 a session-based web application
//! needs (host-only and domain cookies, default path and path matching, `Secure`, `Max-Age`
//! and `Expires` including deletion), hand-rolled rather than the `cookie_store` crate.
//!
//! Why: a load test holds thousands of jars and consults one on every request. `cookie_store`
//! keys everything by a parsed `url::Url` and carries a public-suffix list; here the requests
//! go only to allow-listed origins (so the public-suffix check, which protects a browser
//! against sites setting cookies for `.fr`, has nothing to protect), and a jar holds a handful
//! of cookies scanned linearly. Not implemented: `SameSite` (a browser's cross-site policy;
//! every request here is first-party), `HttpOnly` (no scripts), IP-address domain edge cases.

use jiff::Timestamp;

/// A virtual user's cookies.
#[derive(Debug, Default, Clone)]
pub struct CookieJar {
    cookies: Vec<Cookie>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cookie {
    name: String,
    value: String,
    /// Lowercase, without a leading dot.
    domain: String,
    host_only: bool,
    path: String,
    secure: bool,
    expires: Option<Timestamp>,
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    /// Forgets every cookie (a new session: the next iteration of a virtual user).
    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    /// How many cookies are held (expired ones included until the next request purges them).
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// Whether the jar is empty.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Stores one `Set-Cookie` header received for `host`/`path` (RFC 6265 section 5.3).
    /// Invalid or foreign-domain cookies are ignored, as a browser does.
    pub fn store(&mut self, set_cookie: &str, host: &str, request_path: &str, now: Timestamp) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else { return };
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let host = host.to_ascii_lowercase();
        let mut domain: Option<String> = None;
        let mut path: Option<String> = None;
        let mut secure = false;
        let mut max_age: Option<i64> = None;
        let mut expires: Option<Timestamp> = None;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("domain") {
                let d = v.trim_start_matches('.').to_ascii_lowercase();
                if !d.is_empty() {
                    domain = Some(d);
                }
            } else if k.eq_ignore_ascii_case("path") {
                if v.starts_with('/') {
                    path = Some(v.to_owned());
                }
            } else if k.eq_ignore_ascii_case("secure") {
                secure = true;
            } else if k.eq_ignore_ascii_case("max-age") {
                if let Ok(n) = v.parse::<i64>() {
                    max_age = Some(n);
                }
            } else if k.eq_ignore_ascii_case("expires") {
                expires = parse_cookie_date(v);
            }
        }
        let (domain, host_only) = match domain {
            Some(d) if domain_match(&host, &d) => (d, false),
            Some(_) => return,
            None => (host, true),
        };
        // Max-Age wins over Expires (5.3 step 3).
        let expires = match max_age {
            Some(n) if n <= 0 => Some(Timestamp::MIN),
            Some(n) => Some(now.checked_add(jiff::SignedDuration::from_secs(n)).unwrap_or(Timestamp::MAX)),
            None => expires,
        };
        let path = path.unwrap_or_else(|| default_path(request_path));
        let cookie =
            Cookie { name: name.to_owned(), value: value.trim().to_owned(), domain, host_only, path, secure, expires };
        self.cookies.retain(|c| !(c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path));
        if cookie.expires.is_none_or(|e| e > now) {
            self.cookies.push(cookie);
        }
    }

    /// The `Cookie` header for a request, or `None` when no cookie applies (section 5.4):
    /// longer paths first, then older cookies first.
    pub fn header_for(&mut self, host: &str, path: &str, https: bool, now: Timestamp) -> Option<String> {
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        let host = host.to_ascii_lowercase();
        let mut matching: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| {
                (if c.host_only { c.domain == host } else { domain_match(&host, &c.domain) })
                    && path_match(path, &c.path)
                    && (https || !c.secure)
            })
            .collect();
        if matching.is_empty() {
            return None;
        }
        // Stable sort keeps creation order among equal path lengths.
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let mut out = String::new();
        for c in matching {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&c.name);
            out.push('=');
            out.push_str(&c.value);
        }
        Some(out)
    }
}

/// RFC 6265 5.1.3.
fn domain_match(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && host.parse::<std::net::IpAddr>().is_err())
}

/// RFC 6265 5.1.4: the request path up to its last `/`.
fn default_path(request_path: &str) -> String {
    let path = request_path.split('?').next().unwrap_or("");
    if !path.starts_with('/') {
        return "/".to_owned();
    }
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

/// RFC 6265 5.1.4.
fn path_match(request_path: &str, cookie_path: &str) -> bool {
    let request_path = request_path.split('?').next().unwrap_or("");
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// `Expires` in the IMF-fixdate form servers send (`Thu, 01 Jan 1970 00:00:00 GMT`); other
/// forms are ignored, which makes the cookie a session cookie.
fn parse_cookie_date(v: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::parse(v).ok().map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-03-02T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn host_only_cookie_goes_back_to_its_host_only() {
        let mut jar = CookieJar::new();
        jar.store("PHPSESSID=abc123; path=/; HttpOnly", "ent.example.fr", "/login", now());
        assert_eq!(jar.header_for("ent.example.fr", "/classe/blog", false, now()).as_deref(), Some("PHPSESSID=abc123"));
        assert_eq!(jar.header_for("www.ent.example.fr", "/", false, now()), None);
        assert_eq!(jar.header_for("other.fr", "/", false, now()), None);
    }

    #[test]
    fn domain_cookies_cover_subdomains_and_foreign_domains_are_refused() {
        let mut jar = CookieJar::new();
        jar.store("a=1; Domain=.example.fr", "ent.example.fr", "/", now());
        jar.store("b=2; Domain=elsewhere.fr", "ent.example.fr", "/", now());
        assert_eq!(jar.header_for("blog.example.fr", "/", false, now()).as_deref(), Some("a=1"));
        assert_eq!(jar.len(), 1);
    }

    #[test]
    fn default_path_and_path_matching() {
        let mut jar = CookieJar::new();
        jar.store("p=1", "h", "/classe/blog/new?x=1", now());
        jar.store("root=2; Path=/", "h", "/classe/blog/new", now());
        assert_eq!(jar.header_for("h", "/classe/blog/17", false, now()).as_deref(), Some("p=1; root=2"));
        assert_eq!(jar.header_for("h", "/classe/blogger", false, now()).as_deref(), Some("root=2"));
        assert_eq!(jar.header_for("h", "/classe", false, now()).as_deref(), Some("root=2"));
    }

    #[test]
    fn secure_cookies_need_https() {
        let mut jar = CookieJar::new();
        jar.store("s=1; Secure", "h", "/", now());
        assert_eq!(jar.header_for("h", "/", false, now()), None);
        assert_eq!(jar.header_for("h", "/", true, now()).as_deref(), Some("s=1"));
    }

    #[test]
    fn expiry_replacement_and_deletion() {
        let mut jar = CookieJar::new();
        jar.store("sid=old; Path=/", "h", "/", now());
        jar.store("sid=new; Path=/", "h", "/", now());
        assert_eq!(jar.header_for("h", "/", false, now()).as_deref(), Some("sid=new"));
        jar.store("short=1; Max-Age=60", "h", "/", now());
        let later = now().checked_add(jiff::SignedDuration::from_secs(61)).unwrap();
        assert_eq!(jar.header_for("h", "/", false, later).as_deref(), Some("sid=new"));
        // Logout: the server deletes the session cookie with a date in the past.
        jar.store("sid=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/", "h", "/logout", now());
        assert_eq!(jar.header_for("h", "/", false, now()), None);
        jar.store("e=1; Expires=Wed, 01 Jan 2025 00:00:00 GMT", "h", "/", now());
        assert!(jar.is_empty());
        jar.store("e=2; Expires=Fri, 01 Jan 2027 00:00:00 GMT", "h", "/", now());
        assert_eq!(jar.header_for("h", "/", false, now()).as_deref(), Some("e=2"));
        jar.clear();
        assert!(jar.is_empty());
    }

    #[test]
    fn malformed_set_cookie_is_ignored() {
        let mut jar = CookieJar::new();
        jar.store("novalue", "h", "/", now());
        jar.store("=x", "h", "/", now());
        assert!(jar.is_empty());
    }
}
