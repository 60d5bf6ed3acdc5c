//! Self-telemetry of alerting: alerts fired and resolved, emails sent, failed and waiting.
//!
//! An on-call engineer cannot learn from an email that emails are failing, so
//! `vigie_notifications_failed_total` and `vigie_notifications_queued` are what the dashboards
//! and an external Prometheus watch.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// Alerting counters; clones share the same values.
#[derive(Debug, Clone, Default)]
pub struct AlertingMetrics {
    fired: Counter,
    resolved: Counter,
    reminders: Counter,
    sent: Counter,
    /// Labelled `kind="retryable"` or `kind="permanent"`: a bounded set.
    failed: Family<Labels, Counter>,
    queued: Gauge,
}

impl AlertingMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> AlertingMetrics {
        let m = AlertingMetrics::default();
        registry.register("vigie_alerts_fired", "Alerts that started firing", m.fired.clone());
        registry.register("vigie_alerts_resolved", "Alerts resolved after a quiet period", m.resolved.clone());
        registry.register(
            "vigie_alert_reminders",
            "Reminder emails queued for alerts still firing",
            m.reminders.clone(),
        );
        registry.register("vigie_notifications_sent", "Emails accepted by the mail server", m.sent.clone());
        registry.register(
            "vigie_notifications_failed",
            "Email delivery attempts that failed, by kind (retryable or permanent)",
            m.failed.clone(),
        );
        registry.register("vigie_notifications_queued", "Emails waiting in the outbox for delivery", m.queued.clone());
        // Both kinds exist from the start at 0, so that a rate over them is 0, not "no data".
        for kind in ["permanent", "retryable"] {
            m.failed.get_or_create(&vec![("kind", kind)]).inc_by(0);
        }
        m
    }

    pub(crate) fn fired(&self, n: usize) {
        self.fired.inc_by(n as u64);
    }

    pub(crate) fn resolved(&self, n: usize) {
        self.resolved.inc_by(n as u64);
    }

    pub(crate) fn reminders(&self, n: usize) {
        self.reminders.inc_by(n as u64);
    }

    pub(crate) fn sent(&self) {
        self.sent.inc();
    }

    pub(crate) fn failed(&self, permanent: bool) {
        let kind = if permanent { "permanent" } else { "retryable" };
        self.failed.get_or_create(&vec![("kind", kind)]).inc();
    }

    pub(crate) fn set_queued(&self, n: usize) {
        self.queued.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_appear_in_the_text_exposition() {
        let mut registry = Registry::default();
        let m = AlertingMetrics::register(&mut registry);
        m.fired(2);
        m.failed(true);
        m.failed(false);
        m.failed(false);
        m.set_queued(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("vigie_alerts_fired_total 2"), "{text}");
        assert!(text.contains("vigie_notifications_failed_total{kind=\"retryable\"} 2"), "{text}");
        assert!(text.contains("vigie_notifications_failed_total{kind=\"permanent\"} 1"), "{text}");
        assert!(text.contains("vigie_notifications_queued 3"), "{text}");
    }
}
