//! MariaDB/MySQL scraper: `SHOW GLOBAL STATUS`, a few `SHOW GLOBAL VARIABLES` and the replica
//! status, as `mysql_*` samples named like mysqld_exporter's.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};

use super::{Sample, ScrapeError, sanitize_name};

/// Variables worth watching against the status counters (limits and sizes); the other ~600 are
/// configuration noise.
const VARIABLES: &[&str] = &[
    "max_connections",
    "max_user_connections",
    "innodb_buffer_pool_size",
    "innodb_log_file_size",
    "long_query_time",
    "max_allowed_packet",
    "open_files_limit",
    "table_open_cache",
    "thread_cache_size",
    "wait_timeout",
    "read_only",
];

pub(super) async fn scrape(url: &str) -> Result<Vec<Sample>, ScrapeError> {
    let opts = Opts::from_url(url).map_err(mysql_async::Error::from)?;
    let mut conn = Conn::new(opts).await?;
    let result = collect(&mut conn).await;
    if let Err(error) = conn.disconnect().await {
        tracing::debug!(%error, "mysql disconnect failed");
    }
    result
}

async fn collect(conn: &mut Conn) -> Result<Vec<Sample>, ScrapeError> {
    let status: Vec<(String, Option<String>)> = conn.query("SHOW GLOBAL STATUS").await?;
    let variables: Vec<(String, Option<String>)> = conn.query("SHOW GLOBAL VARIABLES").await?;
    // `SHOW REPLICA STATUS` is MariaDB ≥ 10.5 and MySQL ≥ 8.0.22; MySQL 8.4 removed the old name.
    let replica: Vec<Row> = match conn.query("SHOW REPLICA STATUS").await {
        Ok(rows) => rows,
        Err(mysql_async::Error::Server(_)) => conn.query("SHOW SLAVE STATUS").await?,
        Err(other) => return Err(other.into()),
    };
    let replica = replica.first().map(row_to_map);
    Ok(build_samples(&status, &variables, replica.as_ref()))
}

fn row_to_map(row: &Row) -> HashMap<String, Option<String>> {
    let columns = row.columns_ref();
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let text = match row.as_ref(i) {
                Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                Some(Value::Int(n)) => Some(n.to_string()),
                Some(Value::UInt(n)) => Some(n.to_string()),
                Some(Value::Double(n)) => Some(n.to_string()),
                _ => None,
            };
            (c.name_str().into_owned(), text)
        })
        .collect()
}

/// Status values are numbers, or ON/OFF-like words that become 1/0.
fn numeric(value: Option<&str>) -> Option<f64> {
    let v = value?.trim();
    match v.to_ascii_uppercase().as_str() {
        "ON" | "YES" | "TRUE" => Some(1.0),
        "OFF" | "NO" | "FALSE" => Some(0.0),
        _ => v.parse().ok(),
    }
}

fn build_samples(
    status: &[(String, Option<String>)],
    variables: &[(String, Option<String>)],
    replica: Option<&HashMap<String, Option<String>>>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut threads_connected = None;
    for (name, value) in status {
        if let Some(v) = numeric(value.as_deref()) {
            if name.eq_ignore_ascii_case("threads_connected") {
                threads_connected = Some(v);
            }
            samples.push(Sample::new(format!("mysql_global_status_{}", sanitize_name(name)), v));
        }
    }
    let mut max_connections = None;
    for (name, value) in variables {
        let lower = name.to_ascii_lowercase();
        if !VARIABLES.contains(&lower.as_str()) {
            continue;
        }
        if let Some(v) = numeric(value.as_deref()) {
            if lower == "max_connections" {
                max_connections = Some(v);
            }
            samples.push(Sample::new(format!("mysql_global_variables_{lower}"), v));
        }
    }
    // The saturation rule watches this ratio; computed here so no rule needs to join two series.
    if let (Some(used), Some(max)) = (threads_connected, max_connections)
        && max > 0.0
    {
        samples.push(Sample::new("mysql_connections_usage_ratio", used / max));
    }
    samples.push(Sample::new("mysql_replica", f64::from(u8::from(replica.is_some()))));
    if let Some(r) = replica {
        // MySQL 8 renamed the columns; MariaDB kept the old names.
        let get = |old: &str, new: &str| r.get(old).or_else(|| r.get(new)).cloned().flatten();
        let running = |v: Option<String>| f64::from(u8::from(v.is_some_and(|v| v.eq_ignore_ascii_case("yes"))));
        samples.push(Sample::new("mysql_replica_io_running", running(get("Slave_IO_Running", "Replica_IO_Running"))));
        samples
            .push(Sample::new("mysql_replica_sql_running", running(get("Slave_SQL_Running", "Replica_SQL_Running"))));
        // NULL while replication is stopped: no sample, rather than a misleading 0.
        if let Some(lag) = numeric(get("Seconds_Behind_Master", "Seconds_Behind_Source").as_deref()) {
            samples.push(Sample::new("mysql_replica_seconds_behind_source", lag));
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::{Target, scrape as scrape_target};
    use std::time::Duration;

    fn pairs(p: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        p.iter().map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned))).collect()
    }

    fn value(samples: &[Sample], name: &str) -> Option<f64> {
        samples.iter().find(|s| s.name == name).map(|s| s.value)
    }

    #[test]
    fn status_variables_and_ratio() {
        let status = pairs(&[
            ("Threads_connected", Some("30")),
            ("Threads_running", Some("4")),
            ("Slow_queries", Some("12")),
            ("Rpl_semi_sync_master_status", Some("OFF")),
            ("Ssl_cipher", Some("")),
            ("Ssl_version", None),
        ]);
        let vars = pairs(&[("max_connections", Some("150")), ("version", Some("10.11.6")), ("read_only", Some("ON"))]);
        let s = build_samples(&status, &vars, None);
        assert_eq!(value(&s, "mysql_global_status_threads_connected"), Some(30.0));
        assert_eq!(value(&s, "mysql_global_status_threads_running"), Some(4.0));
        assert_eq!(value(&s, "mysql_global_status_slow_queries"), Some(12.0));
        assert_eq!(value(&s, "mysql_global_status_rpl_semi_sync_master_status"), Some(0.0));
        assert_eq!(value(&s, "mysql_global_variables_max_connections"), Some(150.0));
        assert_eq!(value(&s, "mysql_global_variables_read_only"), Some(1.0));
        assert_eq!(value(&s, "mysql_connections_usage_ratio"), Some(0.2));
        assert_eq!(value(&s, "mysql_replica"), Some(0.0));
        assert_eq!(value(&s, "mysql_global_status_ssl_cipher"), None);
        assert_eq!(value(&s, "mysql_global_variables_version"), None);
    }

    #[test]
    fn replica_status_old_and_new_column_names() {
        let old: HashMap<String, Option<String>> = [
            ("Slave_IO_Running", Some("Yes")),
            ("Slave_SQL_Running", Some("Yes")),
            ("Seconds_Behind_Master", Some("42")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect();
        let s = build_samples(&[], &[], Some(&old));
        assert_eq!(value(&s, "mysql_replica"), Some(1.0));
        assert_eq!(value(&s, "mysql_replica_io_running"), Some(1.0));
        assert_eq!(value(&s, "mysql_replica_sql_running"), Some(1.0));
        assert_eq!(value(&s, "mysql_replica_seconds_behind_source"), Some(42.0));

        let stopped: HashMap<String, Option<String>> = [
            ("Replica_IO_Running", Some("Connecting")),
            ("Replica_SQL_Running", Some("No")),
            ("Seconds_Behind_Source", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect();
        let s = build_samples(&[], &[], Some(&stopped));
        assert_eq!(value(&s, "mysql_replica_io_running"), Some(0.0));
        assert_eq!(value(&s, "mysql_replica_sql_running"), Some(0.0));
        assert_eq!(value(&s, "mysql_replica_seconds_behind_source"), None);
    }

    /// Against this machine's real MariaDB.
    #[tokio::test]
    async fn scrapes_the_local_mariadb() {
        let target = Target::parse("mysql://root@127.0.0.1:3306").unwrap();
        let s = scrape_target(&target, Duration::from_secs(20)).await;
        assert!(
            s.up,
            "MariaDB on 127.0.0.1:3306 (root, no password) is not answering ({:?}); start it with: \
             start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
            s.error
        );
        assert!(value(&s.samples, "mysql_global_status_threads_connected").unwrap() >= 1.0);
        assert!(value(&s.samples, "mysql_global_status_threads_running").unwrap() >= 1.0);
        assert!(value(&s.samples, "mysql_global_status_slow_queries").is_some());
        let max = value(&s.samples, "mysql_global_variables_max_connections").unwrap();
        assert!(max >= 1.0);
        let ratio = value(&s.samples, "mysql_connections_usage_ratio").unwrap();
        assert!(ratio > 0.0 && ratio <= 1.0, "{ratio}");
        assert!(value(&s.samples, "mysql_replica").is_some());
    }

    #[tokio::test]
    async fn unknown_user_is_down_with_the_servers_refusal() {
        let target = Target::parse("mysql://vigie_no_such_user:pw@127.0.0.1:3306").unwrap();
        let s = scrape_target(&target, Duration::from_secs(20)).await;
        assert!(!s.up);
        let err = s.error.unwrap();
        assert!(err.contains("Access denied"), "{err}");
        assert_eq!(s.target, "mysql://vigie_no_such_user:***@127.0.0.1:3306");
    }
}
