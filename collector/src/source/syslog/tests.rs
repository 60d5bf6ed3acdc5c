//! The syslog source over real sockets on 127.0.0.1, with ephemeral ports.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::parse::{Format, ParseContext, Parser};

/// Long enough for anything on a loaded machine; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(20);

const NETFILTER_3164: &str = "<4>Apr  7 14:30:00 fw-ent kernel: iptables DROP_INPUT: IN=eth0 OUT= MAC=90:10:35:5a:1e:3a:90:10:9e:ec:2c:71:08:00 SRC=203.0.113.9 DST=192.0.2.10 LEN=52 TOS=0x00 PREC=0x00 TTL=115 ID=15743 DF PROTO=TCP SPT=17805 DPT=445 WINDOW=8192 RES=0x00 SYN URGP=0";
const FILTERLOG_5424: &str = "<134>1 2025-04-07T14:30:00.123+02:00 pfsense.example filterlog 72237 - - 115,,,1534283903,igb1.27,match,pass,in,4,0x0,,63,29559,0,DF,17,udp,69,10.170.27.50,10.170.27.1,52797,53,49";
const STORMSHIELD: &str = r#"<13>Apr  7 14:31:00 fw1 asqd: id=firewall time="2025-04-07 14:31:00" fw="fw1" tz=+0200 startime="2025-04-07 14:31:00" pri=1 srcif="Ethernet0" ipproto=tcp src=203.0.113.5 srcport=4444 dst=198.51.100.7 dstport=80 action=block msg="Possible SQL injection" class=protocol classification=0 logtype="alarm""#;

fn ctx() -> ParseContext {
    ParseContext {
        now: "2025-04-07T12:30:00Z".parse().unwrap(),
        time_zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap(),
    }
}

fn local() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

fn config(udp: bool, tcp: bool) -> SyslogConfig {
    SyslogConfig {
        udp: if udp { local() } else { None },
        tcp: if tcp { local() } else { None },
        ..SyslogConfig::default()
    }
}

/// Reads until `n` records arrived; fails (never hangs) if they do not.
async fn read_n(source: &mut SyslogSource, n: usize) -> Vec<RawRecord> {
    let mut records = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while records.len() < n {
            let batch = source.read(n - records.len()).await.unwrap().expect("a syslog source never ends");
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            records.extend(batch);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited for {n} records, got {}: {records:?}", records.len()));
    records
}

fn lines(records: &[RawRecord]) -> Vec<&str> {
    records.iter().map(|r| r.line.as_str()).collect()
}

/// Waits until `condition` holds, for what other tasks do meanwhile.
async fn until(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("still waiting for {what}"));
}

async fn udp_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test]
async fn udp_rfc3164_and_rfc5424_datagrams_arrive_and_parse() {
    let mut source = SyslogSource::bind("fw", &config(true, false)).await.unwrap();
    assert_eq!(source.tcp_addr(), None);
    source.resume(Some(&Checkpoint { position: u64::MAX / 2, identity: "syslog".into() })).unwrap();
    let client = udp_client().await;
    let to = source.udp_addr().unwrap();
    client.send_to(NETFILTER_3164.as_bytes(), to).await.unwrap();
    // A trailing newline, as some senders add, is not part of the message.
    client.send_to(format!("{FILTERLOG_5424}\n").as_bytes(), to).await.unwrap();

    let records = read_n(&mut source, 2).await;
    assert_eq!(lines(&records), [NETFILTER_3164, FILTERLOG_5424]);
    assert_eq!(records[0].source.as_ref(), "fw");
    assert_eq!((records[0].position, records[1].position), (u64::MAX / 2, u64::MAX / 2 + 1));
    assert_eq!(source.checkpoint(), Checkpoint { position: u64::MAX / 2 + 2, identity: "syslog".into() });
    assert_eq!(source.stats().received_messages(), 2);

    let auto = Parser::new(&Format::Auto).unwrap();
    for parser in [Parser::new(&Format::Netfilter).unwrap(), auto.clone()] {
        let ev = parser.parse(&records[0].line, &ctx()).unwrap();
        assert_eq!(ev.dataset, "iptables.log");
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00Z");
        assert_eq!(ev.observer_hostname.as_deref(), Some("fw-ent"));
        assert_eq!(ev.source_ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(ev.destination_port, Some(445));
        assert_eq!(ev.action.as_deref(), Some("block"));
    }
    for parser in [Parser::new(&Format::Filterlog).unwrap(), auto] {
        let ev = parser.parse(&records[1].line, &ctx()).unwrap();
        assert_eq!(ev.dataset, "pfsense.log");
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00.123Z");
        assert_eq!(ev.source_ip, Some("10.170.27.50".parse().unwrap()));
        assert_eq!(ev.destination_port, Some(53));
        assert_eq!(ev.action.as_deref(), Some("pass"));
    }
}

#[tokio::test]
async fn tcp_octet_counting_several_frames_per_write_and_split_frames() {
    let mut source = SyslogSource::bind("fw", &config(false, true)).await.unwrap();
    let mut peer = TcpStream::connect(source.tcp_addr().unwrap()).await.unwrap();
    let counted = |m: &str| format!("{} {m}", m.len());
    let two = format!("{}{}", counted(NETFILTER_3164), counted(FILTERLOG_5424));
    peer.write_all(two.as_bytes()).await.unwrap();
    let third = counted(STORMSHIELD);
    let (a, b) = third.split_at(40);
    peer.write_all(a.as_bytes()).await.unwrap();
    peer.flush().await.unwrap();
    let records = read_n(&mut source, 2).await;
    assert_eq!(lines(&records), [NETFILTER_3164, FILTERLOG_5424]);
    peer.write_all(b.as_bytes()).await.unwrap();
    let records = read_n(&mut source, 1).await;
    assert_eq!(lines(&records), [STORMSHIELD]);
    let ev = Parser::new(&Format::Stormshield).unwrap().parse(&records[0].line, &ctx()).unwrap();
    assert_eq!(ev.source_ip, Some("203.0.113.5".parse().unwrap()));
    assert_eq!(ev.action.as_deref(), Some("block"));
}

#[tokio::test]
async fn tcp_newline_framing_and_an_unterminated_last_line() {
    let mut source = SyslogSource::bind("fw", &config(false, true)).await.unwrap();
    let mut peer = TcpStream::connect(source.tcp_addr().unwrap()).await.unwrap();
    let stream = format!("{NETFILTER_3164}\n{FILTERLOG_5424}\r\n{STORMSHIELD}\0<14>Apr  7 14:32:00 h app: last");
    let (a, b) = stream.split_at(NETFILTER_3164.len() + 30);
    peer.write_all(a.as_bytes()).await.unwrap();
    peer.flush().await.unwrap();
    assert_eq!(lines(&read_n(&mut source, 1).await), [NETFILTER_3164]);
    peer.write_all(b.as_bytes()).await.unwrap();
    assert_eq!(lines(&read_n(&mut source, 2).await), [FILTERLOG_5424, STORMSHIELD]);
    // The last line has no newline: it is a message once the peer closes.
    drop(peer);
    assert_eq!(lines(&read_n(&mut source, 1).await), ["<14>Apr  7 14:32:00 h app: last"]);
    until("the connection to close", || source.stats().open_connections() == 0).await;
}

#[tokio::test]
async fn concurrent_tcp_peers_each_keep_their_order() {
    let mut source = SyslogSource::bind("fw", &config(false, true)).await.unwrap();
    let addr = source.tcp_addr().unwrap();
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    until("both peers", || source.stats().open_connections() == 2).await;
    for i in 0..50 {
        // Peer a counts octets, peer b ends lines: framing is per connection.
        let m = format!("<13>Apr  7 14:30:00 a app: {i}");
        a.write_all(format!("{} {m}", m.len()).as_bytes()).await.unwrap();
        b.write_all(format!("<13>Apr  7 14:30:00 b app: {i}\n").as_bytes()).await.unwrap();
    }
    let records = read_n(&mut source, 100).await;
    for peer in ["a", "b"] {
        let got: Vec<&str> =
            records.iter().filter_map(|r| r.line.strip_prefix(&format!("<13>Apr  7 14:30:00 {peer} app: "))).collect();
        let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "peer {peer}");
    }
    let positions: Vec<u64> = records.iter().map(|r| r.position).collect();
    assert!(positions.windows(2).all(|w| w[1] == w[0] + 1), "positions are consecutive: {positions:?}");
}

#[tokio::test]
async fn a_slow_reader_slows_tcp_peers_without_losing_messages() {
    let mut source = SyslogSource::bind_with_queue("fw", &config(false, true), 2).await.unwrap();
    let mut peer = TcpStream::connect(source.tcp_addr().unwrap()).await.unwrap();
    let all: String = (0..200).map(|i| format!("<13>Apr  7 14:30:00 h app: {i}\n")).collect();
    let writer = tokio::spawn(async move {
        peer.write_all(all.as_bytes()).await.unwrap();
        peer
    });
    let mut got = Vec::new();
    while got.len() < 200 {
        got.extend(read_n(&mut source, 1).await);
    }
    let want: Vec<String> = (0..200).map(|i| format!("<13>Apr  7 14:30:00 h app: {i}")).collect();
    assert_eq!(lines(&got), want);
    assert_eq!(source.stats().dropped_datagrams(), 0);
    writer.await.unwrap();
}

#[tokio::test]
async fn tls_peers_send_counted_frames() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
    std::fs::write(&files.cert, generated.cert.pem()).unwrap();
    std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
    let config = SyslogConfig { tls: Some(files), ..config(false, true) };
    let mut source = SyslogSource::bind("fw", &config).await.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(source.tcp_addr().unwrap()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    for m in [STORMSHIELD, NETFILTER_3164] {
        tls.write_all(format!("{} {m}", m.len()).as_bytes()).await.unwrap();
    }
    tls.flush().await.unwrap();
    let records = read_n(&mut source, 2).await;
    assert_eq!(lines(&records), [STORMSHIELD, NETFILTER_3164]);
    let ev = Parser::new(&Format::Auto).unwrap().parse(&records[0].line, &ctx()).unwrap();
    assert_eq!(ev.dataset, "stormshield.log");

    // A peer speaking plain TCP to the TLS port gets nothing in: once the server has
    // closed the connection, nothing was queued.
    let mut plain = TcpStream::connect(source.tcp_addr().unwrap()).await.unwrap();
    plain.write_all(format!("{NETFILTER_3164}\n").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, plain.read_to_end(&mut answer)).await.expect("the server closes").ok();
    tls.shutdown().await.unwrap();
    until("both connections to close", || source.stats().open_connections() == 0).await;
    assert_eq!(source.read(10).await.unwrap(), Some(Vec::new()));
    assert_eq!(source.stats().received_messages(), 2);
}

#[tokio::test]
async fn tls_file_mistakes_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsFiles { cert: dir.path().join("nope.pem"), key: dir.path().join("key.pem") };
    let config = |tls| SyslogConfig { tls: Some(tls), ..config(false, true) };
    let err = SyslogSource::bind("fw", &config(missing)).await.unwrap_err().to_string();
    assert!(err.starts_with(&format!("source fw: cannot read {}/nope.pem: ", dir.path().display())), "{err}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let err = SyslogSource::bind("fw", &config(TlsFiles { cert: garbage.clone(), key: garbage.clone() }))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbage.pem: no PEM certificate found"), "{err}");

    // A certificate with another certificate's key.
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let two = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
    std::fs::write(&files.cert, one.cert.pem()).unwrap();
    std::fs::write(&files.key, two.signing_key.serialize_pem()).unwrap();
    let err = SyslogSource::bind("fw", &config(files)).await.unwrap_err().to_string();
    assert!(err.contains("key.pem: this key cannot serve the certificate"), "{err}");
}

#[tokio::test]
async fn oversized_messages_are_truncated_and_counted() {
    let config = SyslogConfig { max_frame: 64, ..config(true, true) };
    let mut source = SyslogSource::bind("fw", &config).await.unwrap();
    let long = format!("<13>Apr  7 14:30:00 h app: {}", "x".repeat(1000));
    let exact = &long[..64];
    udp_client().await.send_to(long.as_bytes(), source.udp_addr().unwrap()).await.unwrap();
    udp_client().await.send_to(exact.as_bytes(), source.udp_addr().unwrap()).await.unwrap();
    let records = read_n(&mut source, 2).await;
    assert_eq!(lines(&records), [exact, exact]);
    assert_eq!(source.stats().oversized_messages(), 1, "a message of exactly max_frame bytes is whole");

    let short = "<13>Apr  7 14:30:00 h app: short";
    let mut peer = TcpStream::connect(source.tcp_addr().unwrap()).await.unwrap();
    peer.write_all(format!("{} {long}{} {short}", long.len(), short.len()).as_bytes()).await.unwrap();
    let records = read_n(&mut source, 2).await;
    // Octet counting: the rest of the long message is skipped, then the connection carries on.
    assert_eq!(lines(&records), [exact, short]);
    assert_eq!(source.stats().oversized_messages(), 2);
    let mut peer2 = TcpStream::connect(source.tcp_addr().unwrap()).await.unwrap();
    peer2.write_all(format!("{long}\n{short}\n").as_bytes()).await.unwrap();
    let records = read_n(&mut source, 2).await;
    assert_eq!(lines(&records), [exact, short]);
    assert_eq!(source.stats().oversized_messages(), 3);
    drop(peer);
}

#[tokio::test]
async fn a_broken_stream_closes_its_connection_only() {
    let mut source = SyslogSource::bind("fw", &config(false, true)).await.unwrap();
    let addr = source.tcp_addr().unwrap();
    let mut good = TcpStream::connect(addr).await.unwrap();
    let mut bad = TcpStream::connect(addr).await.unwrap();
    bad.write_all(b"9 <13>a b c<13>not counted\n").await.unwrap();
    assert_eq!(lines(&read_n(&mut source, 1).await), ["<13>a b c"]);
    until("the framing error", || source.stats().framing_errors() == 1).await;
    until("the bad peer to be closed", || source.stats().open_connections() == 1).await;
    good.write_all(b"<13>still fine\n").await.unwrap();
    assert_eq!(lines(&read_n(&mut source, 1).await), ["<13>still fine"]);
}

#[tokio::test]
async fn udp_datagrams_are_dropped_and_counted_when_the_queue_is_full() {
    let mut source = SyslogSource::bind_with_queue("fw", &config(true, false), 2).await.unwrap();
    let stats = source.stats();
    let client = udp_client().await;
    for i in 0..5 {
        client.send_to(format!("<13>Apr  7 14:30:00 h app: {i}").as_bytes(), source.udp_addr().unwrap()).await.unwrap();
    }
    until("all five datagrams", || stats.received_messages() + stats.dropped_datagrams() == 5).await;
    assert_eq!((stats.received_messages(), stats.dropped_datagrams()), (2, 3));
    assert_eq!(source.dropped_datagrams(), 3);
    let records = read_n(&mut source, 2).await;
    assert_eq!(lines(&records), ["<13>Apr  7 14:30:00 h app: 0", "<13>Apr  7 14:30:00 h app: 1"]);
    // Room again: the next datagram gets in.
    client.send_to(b"<13>Apr  7 14:30:00 h app: 5", source.udp_addr().unwrap()).await.unwrap();
    assert_eq!(lines(&read_n(&mut source, 1).await), ["<13>Apr  7 14:30:00 h app: 5"]);
    assert_eq!(stats.dropped_datagrams(), 3);
}

#[tokio::test]
async fn dropping_the_source_stops_the_listeners() {
    let source = SyslogSource::bind("fw", &config(true, true)).await.unwrap();
    let (udp, tcp) = (source.udp_addr().unwrap(), source.tcp_addr().unwrap());
    let _connected = TcpStream::connect(tcp).await.unwrap();
    let stats = source.stats();
    until("the peer", || stats.open_connections() == 1).await;
    drop(source);
    until("the connection task to end", || stats.open_connections() == 0).await;
    tokio::time::timeout(PATIENCE, async {
        while TcpStream::connect(tcp).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the tcp listener still accepts");
    // Both ports are free again: a new source can take them.
    let again = SyslogConfig { udp: Some(udp), tcp: Some(tcp), ..SyslogConfig::default() };
    tokio::time::timeout(PATIENCE, async {
        while SyslogSource::bind("fw", &again).await.is_err() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the ports are still held");
}

#[tokio::test]
async fn binding_mistakes_name_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let taken_config = SyslogConfig { tcp: Some(addr), ..SyslogConfig::default() };
    let err = SyslogSource::bind("fw", &taken_config).await.unwrap_err().to_string();
    assert!(err.starts_with(&format!("source fw: cannot read tcp://{addr}: cannot listen there: ")), "{err}");
    assert!(err.contains("another program (rsyslog?) already listens there"), "{err}");

    let err = SyslogSource::bind("fw", &SyslogConfig::default()).await.unwrap_err().to_string();
    assert!(err.contains("no address to listen on"), "{err}");
    let tls = TlsFiles { cert: "c.pem".into(), key: "k.pem".into() };
    let err = SyslogSource::bind("fw", &SyslogConfig { tls: Some(tls), ..config(true, false) }).await.unwrap_err();
    assert!(err.to_string().contains("`tls` needs a `tcp` address"), "{err}");
}

#[test]
fn numbering_never_goes_back() {
    let now: jiff::Timestamp = "2025-04-07T12:30:00Z".parse().unwrap();
    let micros = 1_744_029_000_000_000;
    assert_eq!(first_position(None, now), micros);
    let behind = Checkpoint { position: 42, identity: "syslog".into() };
    assert_eq!(first_position(Some(&behind), now), micros, "a crash may have used positions past the checkpoint");
    let ahead = Checkpoint { position: micros + 5, identity: "syslog".into() };
    assert_eq!(first_position(Some(&ahead), now), micros + 5, "a clock set back does not reuse positions");
    let other = Checkpoint { position: u64::MAX, identity: "dev1:ino2".into() };
    assert_eq!(first_position(Some(&other), now), micros, "another source's checkpoint is ignored");
}

#[tokio::test]
async fn runs_under_run_source_and_checkpoints_acknowledged_batches() {
    use crate::source::{CheckpointStore, SourceOptions, run_source};
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(&dir.path().join("state.sqlite")).unwrap();
    let source = SyslogSource::bind("fw", &config(true, false)).await.unwrap();
    let to = source.udp_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let cancel = tokio_util::sync::CancellationToken::new();
    let options = SourceOptions { idle_wait: Duration::from_millis(1), ..SourceOptions::default() };
    let task =
        tokio::spawn(run_source(source, store.clone(), tx, options, crate::PipelineMetrics::default(), cancel.clone()));

    udp_client().await.send_to(FILTERLOG_5424.as_bytes(), to).await.unwrap();
    let batch = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap().unwrap();
    assert_eq!(lines(&batch.items), [FILTERLOG_5424]);
    let position = batch.items[0].position;
    batch.ack.ack();
    cancel.cancel();
    task.await.unwrap().unwrap();
    let saved = store.load("fw").await.unwrap().unwrap();
    assert_eq!(saved, Checkpoint { position: position + 1, identity: "syslog".into() });
}
