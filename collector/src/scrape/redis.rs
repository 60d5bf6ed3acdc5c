//! Redis scraper: one `INFO` command over RESP, its numeric fields as `redis_*` samples.
//!
//! A hand-written client: `AUTH` and `INFO` are the only commands needed, both a few lines of
//! RESP (<https://redis.io/docs/latest/develop/reference/protocol-spec/>), where the `redis`
//! crate would add a connection manager and a dozen dependencies for them.

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Sample, ScrapeError, UrlParts, sanitize_name};

/// A bulk reply larger than this is not an `INFO` page; refuse it rather than allocate it.
const MAX_BULK_BYTES: usize = 16 * 1024 * 1024;

pub(super) async fn scrape(url: &str) -> Result<Vec<Sample>, ScrapeError> {
    let parts = UrlParts::parse(url).map_err(ScrapeError::Redis)?;
    let stream = TcpStream::connect((parts.host.as_str(), parts.port.unwrap_or(6379))).await?;
    let mut conn = BufReader::new(stream);
    if let Some(password) = &parts.password {
        let password = decode(password);
        let mut args = vec!["AUTH".to_owned()];
        args.extend(parts.user.as_deref().map(decode));
        args.push(password);
        send(&mut conn, &args).await?;
        read_reply(&mut conn).await?;
    }
    send(&mut conn, &["INFO".to_owned()]).await?;
    match read_reply(&mut conn).await? {
        Reply::Bulk(text) => Ok(parse_info(&text)),
        Reply::Simple(other) => Err(ScrapeError::Redis(format!("unexpected reply to INFO: {other}"))),
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

async fn send(conn: &mut BufReader<TcpStream>, args: &[String]) -> Result<(), ScrapeError> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    conn.get_mut().write_all(&buf).await?;
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Bulk(String),
}

async fn read_reply<R: AsyncRead + Unpin>(conn: &mut BufReader<R>) -> Result<Reply, ScrapeError> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(ScrapeError::Redis("connection closed by the server".to_owned()));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" | ":" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Err(ScrapeError::Redis(rest.to_owned())),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| ScrapeError::Redis(format!("invalid bulk length `{rest}`")))?;
            let len = usize::try_from(len).map_err(|_| ScrapeError::Redis("nil reply".to_owned()))?;
            if len > MAX_BULK_BYTES {
                return Err(ScrapeError::Redis(format!("reply of {len} bytes is too large")));
            }
            let mut data = vec![0; len + 2];
            conn.read_exact(&mut data).await?;
            data.truncate(len);
            Ok(Reply::Bulk(String::from_utf8_lossy(&data).into_owned()))
        }
        _ => Err(ScrapeError::Redis(format!("unexpected reply `{line}`"))),
    }
}

/// Turns an `INFO` page into samples: every numeric field as `redis_<field>`, the keyspace lines
/// as `redis_db_keys{db="db0"}` and friends, and the role and replication link as flags.
fn parse_info(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        if section == "keyspace" && key.starts_with("db") {
            for (field, v) in value.split(',').filter_map(|kv| kv.split_once('=')) {
                let Ok(v) = v.parse::<f64>() else { continue };
                let sample = match field {
                    "keys" => Sample::new("redis_db_keys", v),
                    "expires" => Sample::new("redis_db_keys_expiring", v),
                    // Redis reports the average TTL in milliseconds.
                    "avg_ttl" => Sample::new("redis_db_avg_ttl_seconds", v / 1000.0),
                    _ => continue,
                };
                samples.push(sample.with_label("db", key));
            }
            continue;
        }
        match key {
            "role" => samples.push(Sample::new("redis_role", 1.0).with_label("role", value)),
            "master_link_status" => samples.push(Sample::new("redis_master_link_up", f64::from(value == "up"))),
            _ => {
                if let Ok(v) = value.parse::<f64>() {
                    samples.push(Sample::new(format!("redis_{}", sanitize_name(key)), v));
                }
            }
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::{Target, scrape as scrape_target};
    use std::time::Duration;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:1234\r\n\r\n# Clients\r\n\
        connected_clients:3\r\n\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\
        maxmemory:0\r\nmem_fragmentation_ratio:1.25\r\n\r\n# Stats\r\nevicted_keys:2\r\n\
        instantaneous_ops_per_sec:17\r\n\r\n# Replication\r\nrole:slave\r\nmaster_link_status:down\r\n\r\n\
        # Keyspace\r\ndb0:keys=10,expires=4,avg_ttl=2500\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn info_fields_become_samples() {
        let s = parse_info(INFO);
        assert_eq!(value(&s, "redis_connected_clients", &[]), Some(3.0));
        assert_eq!(value(&s, "redis_used_memory", &[]), Some(1_048_576.0));
        assert_eq!(value(&s, "redis_maxmemory", &[]), Some(0.0));
        assert_eq!(value(&s, "redis_mem_fragmentation_ratio", &[]), Some(1.25));
        assert_eq!(value(&s, "redis_evicted_keys", &[]), Some(2.0));
        assert_eq!(value(&s, "redis_instantaneous_ops_per_sec", &[]), Some(17.0));
        assert_eq!(value(&s, "redis_uptime_in_seconds", &[]), Some(1234.0));
        assert_eq!(value(&s, "redis_db_keys", &[("db", "db0")]), Some(10.0));
        assert_eq!(value(&s, "redis_db_keys_expiring", &[("db", "db0")]), Some(4.0));
        assert_eq!(value(&s, "redis_db_avg_ttl_seconds", &[("db", "db0")]), Some(2.5));
        assert_eq!(value(&s, "redis_db_keys", &[("db", "db3")]), Some(1.0));
        assert_eq!(value(&s, "redis_role", &[("role", "slave")]), Some(1.0));
        assert_eq!(value(&s, "redis_master_link_up", &[]), Some(0.0));
        // Text fields are not samples.
        assert!(s.iter().all(|x| x.name != "redis_used_memory_human" && x.name != "redis_redis_version"));
    }

    #[tokio::test]
    async fn resp_replies() {
        async fn read(bytes: &'static [u8]) -> Result<Reply, ScrapeError> {
            read_reply(&mut BufReader::new(bytes)).await
        }
        assert_eq!(read(b"+OK\r\n").await.unwrap(), Reply::Simple("OK".into()));
        assert_eq!(read(b"$5\r\nhello\r\n").await.unwrap(), Reply::Bulk("hello".into()));
        let err = read(b"-NOAUTH Authentication required.\r\n").await.unwrap_err().to_string();
        assert_eq!(err, "redis: NOAUTH Authentication required.");
        assert!(read(b"").await.unwrap_err().to_string().contains("connection closed"));
        assert!(read(b"$-1\r\n").await.unwrap_err().to_string().contains("nil"));
        assert!(read(b"$999999999\r\n").await.unwrap_err().to_string().contains("too large"));
        assert!(read(b"$10\r\nshort\r\n").await.is_err());
    }

    /// Against this machine's real Redis.
    #[tokio::test]
    async fn scrapes_the_local_redis() {
        let target = Target::parse("redis://127.0.0.1:6379").unwrap();
        let s = scrape_target(&target, Duration::from_secs(10)).await;
        assert!(
            s.up,
            "Redis on 127.0.0.1:6379 is not answering ({:?}); start it with: redis-server --daemonize yes \
             --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis \
             --logfile /var/log/redis/ci.log",
            s.error
        );
        assert!(value(&s.samples, "redis_connected_clients", &[]).unwrap() >= 1.0);
        assert!(value(&s.samples, "redis_used_memory", &[]).unwrap() > 0.0);
        assert!(value(&s.samples, "redis_maxmemory", &[]).is_some());
        assert!(value(&s.samples, "redis_evicted_keys", &[]).is_some());
        assert!(value(&s.samples, "redis_instantaneous_ops_per_sec", &[]).is_some());
        assert_eq!(s.target, "redis://127.0.0.1:6379");
    }

    #[tokio::test]
    async fn wrong_password_is_down_with_the_servers_answer() {
        let target = Target::parse("redis://:not-the-password@127.0.0.1:6379").unwrap();
        let s = scrape_target(&target, Duration::from_secs(10)).await;
        assert!(!s.up);
        // Without `requirepass`, Redis answers that no password is set; with one, WRONGPASS.
        let err = s.error.unwrap();
        assert!(err.starts_with("redis: ") && (err.contains("AUTH") || err.contains("WRONGPASS")), "{err}");
        assert_eq!(s.target, "redis://:***@127.0.0.1:6379");
    }
}
