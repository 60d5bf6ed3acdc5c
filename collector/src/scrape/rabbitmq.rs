//! RabbitMQ scraper: the management HTTP API's `/api/queues`, as per-queue `rabbitmq_queue_*`
//! samples (depth, consumers, unacknowledged messages, publish and deliver rates).
//!
//! API reference: <https://www.rabbitmq.com/docs/http-api-reference>. Needs the
//! `rabbitmq_management` plugin (`rabbitmq-plugins enable rabbitmq_management`).

use std::time::Duration;

use serde::Deserialize;

use super::{Sample, ScrapeError, http};

#[derive(Debug, Deserialize)]
struct Queue {
    name: String,
    vhost: String,
    // Counts are absent until the broker has gathered its first statistics for a new queue.
    messages: Option<f64>,
    messages_ready: Option<f64>,
    messages_unacknowledged: Option<f64>,
    consumers: Option<f64>,
    #[serde(default)]
    message_stats: MessageStats,
}

#[derive(Debug, Default, Deserialize)]
struct MessageStats {
    publish: Option<f64>,
    publish_details: Option<Rate>,
    deliver_get: Option<f64>,
    deliver_get_details: Option<Rate>,
    ack: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Rate {
    rate: f64,
}

pub(super) async fn scrape(base_url: &str, timeout: Duration) -> Result<Vec<Sample>, ScrapeError> {
    // Only the fields we read; `disable_stats` would drop the rates we need.
    let url = format!(
        "{}/api/queues?columns=name,vhost,messages,messages_ready,messages_unacknowledged,consumers,message_stats",
        base_url.trim_end_matches('/')
    );
    let body = http::get_text(&url, timeout, "application/json").await?;
    parse_queues(&body)
}

fn parse_queues(json: &str) -> Result<Vec<Sample>, ScrapeError> {
    let queues: Vec<Queue> =
        serde_json::from_str(json).map_err(|source| ScrapeError::Json { what: "RabbitMQ /api/queues", source })?;
    let mut samples = Vec::new();
    for q in queues {
        let stats = &q.message_stats;
        let fields = [
            ("rabbitmq_queue_messages", q.messages),
            ("rabbitmq_queue_messages_ready", q.messages_ready),
            ("rabbitmq_queue_messages_unacked", q.messages_unacknowledged),
            ("rabbitmq_queue_consumers", q.consumers),
            ("rabbitmq_queue_messages_published_total", stats.publish),
            ("rabbitmq_queue_messages_delivered_total", stats.deliver_get),
            ("rabbitmq_queue_messages_acked_total", stats.ack),
            ("rabbitmq_queue_publish_rate", stats.publish_details.as_ref().map(|r| r.rate)),
            ("rabbitmq_queue_deliver_rate", stats.deliver_get_details.as_ref().map(|r| r.rate)),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                samples.push(
                    Sample::new(name, v).with_label("vhost", q.vhost.as_str()).with_label("queue", q.name.as_str()),
                );
            }
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::http::test_server::serve;
    use crate::scrape::{Target, scrape as scrape_target};

    /// Trimmed from a real `GET /api/queues` answer (RabbitMQ 3.10): one busy queue with rates,
    /// one queue created a moment ago, before the broker's first statistics.
    const QUEUES: &str = r#"[
      {"name":"ent.mail","vhost":"/","messages":120,"messages_ready":100,"messages_unacknowledged":20,
       "consumers":2,"durable":true,
       "message_stats":{"publish":5000,"publish_details":{"rate":12.5},
                        "deliver_get":4880,"deliver_get_details":{"rate":11.0},"ack":4860,"ack_details":{"rate":10.8}}},
      {"name":"fresh","vhost":"ent"}
    ]"#;

    fn value(samples: &[Sample], name: &str, queue: &str) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.name == name && s.labels.iter().any(|(k, v)| k == "queue" && v == queue))
            .map(|s| s.value)
    }

    #[test]
    fn queue_fields_become_samples() {
        let s = parse_queues(QUEUES).unwrap();
        assert_eq!(value(&s, "rabbitmq_queue_messages", "ent.mail"), Some(120.0));
        assert_eq!(value(&s, "rabbitmq_queue_messages_ready", "ent.mail"), Some(100.0));
        assert_eq!(value(&s, "rabbitmq_queue_messages_unacked", "ent.mail"), Some(20.0));
        assert_eq!(value(&s, "rabbitmq_queue_consumers", "ent.mail"), Some(2.0));
        assert_eq!(value(&s, "rabbitmq_queue_publish_rate", "ent.mail"), Some(12.5));
        assert_eq!(value(&s, "rabbitmq_queue_deliver_rate", "ent.mail"), Some(11.0));
        assert_eq!(value(&s, "rabbitmq_queue_messages_acked_total", "ent.mail"), Some(4860.0));
        assert_eq!(
            s[0].labels,
            vec![("vhost".to_owned(), "/".to_owned()), ("queue".to_owned(), "ent.mail".to_owned())]
        );
        // No statistics yet: no samples rather than zeros.
        assert!(s.iter().all(|x| !x.labels.iter().any(|(_, v)| v == "fresh")));
    }

    #[test]
    fn bad_json_is_an_error() {
        let err = parse_queues("{\"error\":\"not_authorised\"}").unwrap_err().to_string();
        assert!(err.starts_with("invalid json from RabbitMQ /api/queues"), "{err}");
    }

    #[tokio::test]
    async fn sends_credentials_and_reads_the_api() {
        let path =
            "/api/queues?columns=name,vhost,messages,messages_ready,messages_unacknowledged,consumers,message_stats";
        let base = serve(vec![(path, 200, QUEUES.to_owned())]).await;
        let with_auth = base.replacen("http://", "http://guest:guest@", 1);
        let s =
            scrape_target(&Target::parse(&format!("rabbitmq+{with_auth}/")).unwrap(), Duration::from_secs(10)).await;
        assert!(s.up, "{:?}", s.error);
        assert_eq!(value(&s.samples, "rabbitmq_queue_messages", "ent.mail"), Some(120.0));
        assert_eq!(s.target, format!("rabbitmq+{}", base.replacen("http://", "http://guest:***@", 1)) + "/");
        // ureq turns the URL's user:password into Basic authentication.
        let auth = http::get_text(&format!("{with_auth}/echo-auth"), Duration::from_secs(10), "*/*").await.unwrap();
        assert_eq!(auth, "Basic Z3Vlc3Q6Z3Vlc3Q=");
    }

    const MANAGEMENT: &str = "http://guest:guest@127.0.0.1:15672";

    /// Makes sure the management API of this machine's RabbitMQ answers, enabling the plugin if needed.
    async fn ensure_management() {
        let overview = format!("{MANAGEMENT}/api/overview");
        if http::get_text(&overview, Duration::from_secs(10), "application/json").await.is_ok() {
            return;
        }
        let enabled =
            tokio::process::Command::new("rabbitmq-plugins").args(["enable", "rabbitmq_management"]).output().await;
        let mut last = String::new();
        // The plugin's listener comes up a few seconds after `enable` returns.
        for _ in 0..60 {
            match http::get_text(&overview, Duration::from_secs(5), "application/json").await {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "RabbitMQ management API on 127.0.0.1:15672 is not answering ({last}; `rabbitmq-plugins enable \
             rabbitmq_management` gave {enabled:?}). Start RabbitMQ with `rabbitmq-server -detached`, then run \
             `rabbitmq-plugins enable rabbitmq_management`"
        );
    }

    fn management(method: &'static str, path: String, body: &'static str) -> Result<(), ureq::Error> {
        let url = format!("{MANAGEMENT}{path}");
        match method {
            "PUT" => ureq::put(&url).header("content-type", "application/json").send(body).map(drop),
            _ => ureq::delete(&url).call().map(drop),
        }
    }

    /// Against this machine's real RabbitMQ: a queue with a published message shows up with its depth.
    #[tokio::test(flavor = "multi_thread")]
    async fn scrapes_the_local_rabbitmq() {
        ensure_management().await;
        let queue = format!("vigie-scrape-test-{}", std::process::id());
        let q = queue.clone();
        tokio::task::spawn_blocking(move || {
            management("PUT", format!("/api/queues/%2F/{q}"), r#"{"durable":false,"auto_delete":false}"#)?;
            // The default exchange routes by queue name.
            let body =
                format!(r#"{{"properties":{{}},"routing_key":"{q}","payload":"bonjour","payload_encoding":"string"}}"#);
            ureq::post(&format!("{MANAGEMENT}/api/exchanges/%2F/amq.default/publish"))
                .header("content-type", "application/json")
                .send(body.as_str())
                .map(drop)
        })
        .await
        .unwrap()
        .expect("creating the test queue through the management API");

        let target = Target::parse(&format!("rabbitmq+{MANAGEMENT}")).unwrap();
        let (mut depth, mut consumers) = (None, None);
        // The broker refreshes queue statistics every few seconds, and fills a new queue's in
        // steps (its depth was once seen before its consumer count): poll until both show.
        for _ in 0..60 {
            let s = scrape_target(&target, Duration::from_secs(10)).await;
            assert!(s.up, "{:?}", s.error);
            depth = value(&s.samples, "rabbitmq_queue_messages", &queue);
            consumers = value(&s.samples, "rabbitmq_queue_consumers", &queue);
            if depth == Some(1.0) && consumers.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let q = queue.clone();
        tokio::task::spawn_blocking(move || management("DELETE", format!("/api/queues/%2F/{q}"), ""))
            .await
            .unwrap()
            .expect("deleting the test queue");
        assert_eq!(depth, Some(1.0), "queue {queue} never showed its one message");
        assert_eq!(consumers, Some(0.0), "queue {queue} never showed its consumer count");
    }
}
