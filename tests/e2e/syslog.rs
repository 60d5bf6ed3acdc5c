//! Syslog: RFC 3164 and RFC 5424 frames over UDP and TCP to a running `vigie` arrive parsed.

use std::io::Write;
use std::time::Duration;

use crate::support::{Running, free_port, sample};

#[test]
fn frames_over_udp_and_tcp_arrive_parsed_and_archived() {
    let dir = tempfile::tempdir().unwrap();
    let (http, udp, tcp) = (free_port(), free_port(), free_port());
    let config = dir.path().join("vigie.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndir = \"data\"\n\n[server]\nlisten = \"127.0.0.1:{http}\"\n\n\
             [[sources]]\nid = \"fw\"\nkind = \"syslog\"\nudp = \"127.0.0.1:{udp}\"\ntcp = \"127.0.0.1:{tcp}\"\n\n\
             [analyzer]\nrules = \"{}\"\n\n[alerting]\non_call = [\"astreinte@ville.fr\"]\n",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules")
        ),
    )
    .unwrap();
    let mut vigie = Running::run(&config, &format!("127.0.0.1:{http}"));
    vigie.wait_for("/readyz", Duration::from_secs(60), |v| v.get("/readyz").is_some_and(|(code, _)| code == 200));

    // RFC 3164 netfilter line over UDP.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let bsd = "<4>Apr  7 14:30:00 fw-ent kernel: DROP_IN: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 \
               SRC=198.51.100.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=50 ID=1 PROTO=TCP SPT=40000 DPT=22 \
               WINDOW=1024 RES=0x00 SYN URGP=0";
    socket.send_to(bsd.as_bytes(), ("127.0.0.1", udp)).unwrap();
    // RFC 5424 pfSense filterlog line over TCP, octet-counted, and a second one newline-framed.
    let filterlog = "<134>1 2025-04-07T14:30:01+02:00 pfsense filterlog 72237 - - \
                     146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,10.170.12.50,192.0.2.10,49724,853,0,S,1891286705,,64240,,mss;sackOK;TS;nop;wscale";
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    write!(stream, "{} {filterlog}", filterlog.len()).unwrap();
    drop(stream);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    writeln!(stream, "{}", filterlog.replace("72237", "72238").replace("49724", "49725")).unwrap();
    drop(stream);

    vigie.wait_for("three syslog messages", Duration::from_secs(30), |v| {
        v.get("/metrics").is_some_and(|(_, m)| {
            sample(&m, "vigie_source_records_total", "source=\"fw\"").unwrap_or(0.0) >= 3.0
                && sample(&m, "vigie_archive_records_total", "").unwrap_or(0.0) >= 3.0
        })
    });
    let (_, metrics) = vigie.get("/metrics").unwrap();
    assert_eq!(sample(&metrics, "vigie_parse_failures_total", "").unwrap_or(0.0), 0.0, "{metrics}");
    vigie.terminate();
    let status = vigie.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}; log:\n{}", vigie.log());

    let stats = crate::crash::archive_stats(&dir.path().join("data"));
    assert_eq!(stats["documents"], 3, "{stats}");
    assert_eq!(stats["duplicate_ids"], 0);
}
