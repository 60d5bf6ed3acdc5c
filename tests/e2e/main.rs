//! End-to-end tests of the `vigie` binary: one integration test binary, with shared helpers
//! that start the binary and the real servers a test needs.

mod alerting;
mod analyze;
mod archive;
mod browser;
mod check_config;
mod crash;
mod demo;
mod fail2ban;
mod files;
mod kafka;
mod loadtest;
mod metrics;
mod parse;
mod scrape;
mod support;
mod syslog;
mod web;
