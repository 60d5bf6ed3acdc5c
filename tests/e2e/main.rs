//! End-to-end tests of the `vigie` binary: one integration test binary, with shared helpers
//! that start the binary and the real servers a test needs.

mod analyze;
mod check_config;
mod crash;
mod demo;
mod fail2ban;
mod files;
mod parse;
mod scrape;
mod support;
mod syslog;
