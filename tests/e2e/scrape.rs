//! `vigie scrape --once` against this machine's real Redis and MariaDB.

use crate::support::vigie;

#[test]
fn real_redis_and_mariadb_are_scraped() {
    let out =
        vigie().args(["scrape", "--once", "redis://127.0.0.1:6379", "mysql://root@127.0.0.1:3306"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "is Redis (redis-server --daemonize yes --port 6379) and MariaDB (mariadbd) running? {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("up{target=\"redis://127.0.0.1:6379\"} 1"), "{text}");
    assert!(text.contains("up{target=\"mysql://root@127.0.0.1:3306\"} 1"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("redis_used_memory{")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("mysql_global_variables_max_connections{")), "{text}");
}

#[test]
fn a_target_that_is_down_says_so() {
    let port = crate::support::free_port();
    let out = vigie().args(["scrape", "--once", &format!("redis://127.0.0.1:{port}")]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("up{{target=\"redis://127.0.0.1:{port}\"}} 0")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is down"));
}
