//! Apache httpd: access logs in any `LogFormat`, and the error log (2.2 and 2.4 styles).

mod error_log;
mod logformat;

pub(crate) use error_log::parse as parse_error_log;
pub(crate) use logformat::{COMBINED, COMMON, VHOST_COMBINED, VHOST_COMBINED_NO_PORT, VHOST_COMMON, compile};
