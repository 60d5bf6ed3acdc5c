//! The route table, as data: every path with its method, who may use it, its place in the
//! navigation and its description. The router, the access checks, the navigation bar, the
//! OpenAPI document and the tests are all built from this one list.

use crate::users::Role;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the login page, the static assets, the liveness and readiness probes.
    Public,
    /// Sessions of these roles, or without a session the machine clients of the settings
    /// (Prometheus reading `/metrics`, a firewall fetching the block list).
    Machine(&'static [Role]),
    /// Sessions of these roles only.
    Roles(&'static [Role]),
}

impl Access {
    /// The roles a session needs (empty for public routes).
    pub fn roles(self) -> &'static [Role] {
        match self {
            Access::Public => &[],
            Access::Machine(r) | Access::Roles(r) => r,
        }
    }
}

/// What a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HTML page (anonymous visitors are sent to the login page).
    Page,
    /// A form target (POST, CSRF-checked), answering with a redirect or a page.
    Form,
    /// JSON or text for programs (anonymous requests get 401).
    Api,
    /// CSS, JavaScript, probes.
    Asset,
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    /// The axum path (`/requisitions/export/{id}`).
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
    /// Its title in the navigation bar, for the pages listed there.
    pub nav: Option<&'static str>,
    /// What it does (the OpenAPI summary).
    pub summary: &'static str,
    /// Refused to other roles with 404, as if it did not exist (requisitions, audit).
    pub hidden: bool,
}

const DASH: &[Role] = &[Role::Viewer, Role::OnCall, Role::Approver, Role::Admin];
const ON_CALL: &[Role] = &[Role::OnCall, Role::Admin];
const APPROVE: &[Role] = &[Role::Approver, Role::Admin];
const LEGAL: &[Role] = &[Role::Legal];
const AUDIT: &[Role] = &[Role::Legal, Role::Admin];
const ANYONE_LOGGED_IN: &[Role] = &Role::ALL;

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    kind: Kind,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec { method, path, access, kind, nav: None, summary, hidden: false }
}

const fn page(path: &'static str, roles: &'static [Role], nav: &'static str, summary: &'static str) -> RouteSpec {
    RouteSpec {
        method: "GET",
        path,
        access: Access::Roles(roles),
        kind: Kind::Page,
        nav: Some(nav),
        summary,
        hidden: false,
    }
}

const fn hidden(mut r: RouteSpec) -> RouteSpec {
    r.hidden = true;
    r
}

/// Every route of the web server.
pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/connexion", Access::Public, Kind::Page, "Login form"),
    route("POST", "/connexion", Access::Public, Kind::Form, "Log in (rate-limited; double-submit CSRF token)"),
    route("POST", "/deconnexion", Access::Roles(ANYONE_LOGGED_IN), Kind::Form, "Log out"),
    route("GET", "/static/vigie.css", Access::Public, Kind::Asset, "Style sheet"),
    route("GET", "/static/vigie.js", Access::Public, Kind::Asset, "Auto-refresh and time-range picker script"),
    route("GET", "/healthz", Access::Public, Kind::Asset, "Liveness probe"),
    route("GET", "/readyz", Access::Public, Kind::Asset, "Readiness probe: every stage running"),
    route("GET", "/metrics", Access::Machine(DASH), Kind::Api, "Vigie's metrics, Prometheus text format"),
    route("GET", "/api/v1/blocklist", Access::Machine(DASH), Kind::Api, "Blocked addresses, one a line"),
    route("GET", "/notices/approve", Access::Public, Kind::Page, "Confirm an outage notice from its emailed link"),
    route("POST", "/notices/approve", Access::Public, Kind::Form, "Approve an outage notice (signed link token)"),
    route("GET", "/alerts/ack", Access::Public, Kind::Page, "Confirm an alert acknowledgement from its emailed link"),
    route("POST", "/alerts/ack", Access::Public, Kind::Form, "Acknowledge an alert (signed link token)"),
    route("GET", "/api/openapi.json", Access::Roles(ANYONE_LOGGED_IN), Kind::Api, "This document"),
    page("/", DASH, "Vue d’ensemble", "Overview: ENT up or down, availability, alerts, traffic, detections"),
    route("GET", "/api/v1/overview", Access::Roles(DASH), Kind::Api, "The overview's figures"),
    route("GET", "/api/status", Access::Roles(DASH), Kind::Api, "Readiness, stage counters and firing alerts"),
    page("/disponibilite", DASH, "Disponibilité", "Each day's contractual window with its outages; monthly ratio"),
    route("GET", "/api/v1/availability", Access::Roles(DASH), Kind::Api, "The month's availability"),
    page("/securite", DASH, "Sécurité", "Detections by rule and severity, offending addresses, block list, denies"),
    route("GET", "/api/v1/security", Access::Roles(DASH), Kind::Api, "The security page's figures"),
    page("/saturation", DASH, "Saturation", "Host and service series from the panel files"),
    route("GET", "/api/v1/saturation", Access::Roles(DASH), Kind::Api, "The saturation panels' series"),
    page("/trafic", DASH, "Trafic et statistiques", "CCTP 4.3.3 statistics per school and user category"),
    route("GET", "/api/v1/traffic", Access::Roles(DASH), Kind::Api, "The statistics of a period"),
    route("GET", "/trafic.csv", Access::Roles(DASH), Kind::Api, "The statistics of a period, as CSV"),
    page("/incidents", DASH, "Incidents et avis", "Incidents, outage notices to approve, alert history, silences"),
    route("GET", "/api/v1/incidents", Access::Roles(DASH), Kind::Api, "Incidents, notices, alerts and silences"),
    route("POST", "/incidents/avis/{id}/approuver", Access::Roles(APPROVE), Kind::Form, "Approve an outage notice"),
    route("POST", "/alertes/{id}/prise-en-compte", Access::Roles(ON_CALL), Kind::Form, "Acknowledge an alert"),
    route("POST", "/alertes/silences", Access::Roles(ON_CALL), Kind::Form, "Silence alerts of a rule or key"),
    route("POST", "/alertes/silences/{id}/lever", Access::Roles(ON_CALL), Kind::Form, "End a silence now"),
    hidden(page("/requisitions", LEGAL, "Réquisitions", "Requisition search form")),
    hidden(route(
        "POST",
        "/requisitions/recherche",
        Access::Roles(LEGAL),
        Kind::Form,
        "Run a requisition search (reference mandatory, rate-limited, audited)",
    )),
    hidden(route("GET", "/requisitions/export/{id}", Access::Roles(LEGAL), Kind::Api, "Download a search's export")),
    hidden(page("/audit", AUDIT, "Journal d’audit", "The audit log of requisition searches")),
    page("/sante", DASH, "Santé de Vigie", "Pipeline counters, dead letters, queues, outbox, archive"),
    route("GET", "/api/v1/health", Access::Roles(DASH), Kind::Api, "Vigie's own health figures"),
];

/// The OpenAPI 3.1 document of the JSON API and forms, built from [`ROUTES`].
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES.iter().filter(|r| matches!(r.kind, Kind::Api | Kind::Form)) {
        let roles: Vec<&str> = r.access.roles().iter().map(|r| r.as_str()).collect();
        let params: Vec<serde_json::Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| serde_json::json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let content = if r.path.ends_with(".csv") || r.path.starts_with("/requisitions/export") {
            "text/csv"
        } else if matches!(r.path, "/metrics" | "/api/v1/blocklist") {
            "text/plain"
        } else if r.kind == Kind::Form {
            "text/html"
        } else {
            "application/json"
        };
        let mut op = serde_json::json!({
            "summary": r.summary,
            "x-vigie-roles": roles,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {content: {}}},
                "401": {"description": "No valid session"},
                "403": {"description": "The session's role may not use this route"},
            }
        });
        if r.kind == Kind::Form {
            op["requestBody"] = serde_json::json!({
                "required": true,
                "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object",
                    "properties": {"csrf": {"type": "string", "description": "The session's CSRF token"}},
                    "required": ["csrf"]}}}
            });
            op["responses"]["303"] = serde_json::json!({"description": "Done; redirect to the page"});
        }
        if matches!(r.access, Access::Roles(_) | Access::Machine(_)) {
            op["security"] = serde_json::json!([{"session": []}]);
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| serde_json::json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vigie",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The JSON API behind Vigie's pages. Every route needs a session cookie (log in at /connexion) \
                            of one of the roles listed in x-vigie-roles; forms need the session's CSRF token."
        },
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE}}},
        "paths": paths,
    })
}
