//! Enrichment: what Vigie adds to an event from its own reference data (GeoIP/ASN, school networks, user roles).
//!
//! Every enricher only *fills* fields the log left empty: what the source said wins over what we
//! infer. Enrichment never fails an event — a lookup that cannot answer leaves the field `None`.

mod error;
mod geoip;
mod roles;
mod schools;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::event::Event;

pub use error::EnrichError;
pub use geoip::{GeoInfo, GeoIp, GeoIpConfig};
pub use roles::RoleMap;
pub use schools::{SchoolEntry, Schools};

/// The enrichment stage: GeoIP/ASN, school attribution and user role, each optional.
///
/// `Send + Sync`: one `Arc<Enricher>` is shared by the parse workers and the reloader task.
#[derive(Debug, Default)]
pub struct Enricher {
    geo: Option<GeoIp>,
    schools: Option<Schools>,
    roles: Option<RoleMap>,
}

impl Enricher {
    pub fn new(geo: Option<GeoIp>, schools: Option<Schools>, roles: Option<RoleMap>) -> Enricher {
        Enricher { geo, schools, roles }
    }

    /// Fills the event's empty enrichment fields. Cheap and non-blocking: no file I/O happens
    /// here (database reloads are done by [`Enricher::reload_if_changed`]).
    pub fn enrich(&self, event: &mut Event) {
        if let Some(schools) = &self.schools {
            schools.enrich(event);
        }
        if let Some(geo) = &self.geo {
            geo.enrich(event);
        }
        if let Some(roles) = &self.roles {
            roles.apply(event);
        }
    }

    /// [`Enricher::enrich`] on every event of a batch.
    pub fn enrich_all(&self, events: &mut [Event]) {
        for event in events {
            self.enrich(event);
        }
    }

    pub fn geoip(&self) -> Option<&GeoIp> {
        self.geo.as_ref()
    }

    pub fn schools(&self) -> Option<&Schools> {
        self.schools.as_ref()
    }

    /// Reloads the GeoIP databases whose file changed; returns how many were swapped in.
    /// Blocking (reads and verifies whole files): call it from `spawn_blocking` or a thread,
    /// as [`run_geoip_reloader`] does.
    pub fn reload_if_changed(&self) -> usize {
        self.geo.as_ref().map_or(0, GeoIp::reload_if_changed)
    }
}

/// Checks the GeoIP database files every `every` and swaps in the ones that changed, until
/// `cancel` fires. The check runs on the blocking pool so that reading a 60 MB database never
/// stalls the async workers; a failed reload keeps the previous database (see [`GeoIp`]).
pub async fn run_geoip_reloader(enricher: Arc<Enricher>, every: Duration, cancel: CancellationToken) {
    if enricher.geoip().is_none() {
        return;
    }
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate and the databases were just loaded: skip it.
    ticker.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let enricher = Arc::clone(&enricher);
        if let Err(e) = tokio::task::spawn_blocking(move || enricher.reload_if_changed()).await {
            // A panic in the reload must not end the reloader: the next tick tries again.
            tracing::error!(error = %e, "geoip reload task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn enricher_is_send_and_sync() {
        assert_send_sync::<Enricher>();
    }

    fn event(ip: &str, user: Option<&str>) -> Event {
        Event { source_ip: Some(ip.parse::<IpAddr>().unwrap()), user_name: user.map(str::to_owned), ..Event::default() }
    }

    #[test]
    fn combines_geoip_schools_and_roles() {
        let geo = GeoIp::open(&GeoIpConfig {
            location: Some(geoip::tests::data("GeoLite2-City-Test.mmdb")),
            asn: Some(geoip::tests::data("GeoLite2-ASN-Test.mmdb")),
            optional: false,
        })
        .unwrap();
        let enricher = Enricher::new(Some(geo), Some(Schools::from_demo()), Some(RoleMap::demo()));

        // A teacher at school #5 (index 4): attributed to the school; a private address has no geo.
        let demo = crate::source::demo::schools();
        let school = &demo[4];
        let o = school.network.octets();
        let mut at_school = event(&format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3] + 3), Some("marie.dupont.ens"));
        enricher.enrich(&mut at_school);
        assert_eq!(at_school.school_uai.as_deref(), Some(school.uai.as_str()));
        assert_eq!(at_school.school_name.as_deref(), Some(school.name.as_str()));
        assert_eq!(at_school.user_role.as_deref(), Some("enseignant"));
        assert_eq!(at_school.source_country, None);

        // A parent from abroad: geo and ASN filled, no school.
        let mut parent = event("89.160.20.130", Some("paul.martin.par"));
        enricher.enrich(&mut parent);
        assert_eq!(parent.source_country.as_deref(), Some("SE"));
        assert_eq!(parent.source_city.as_deref(), Some("Linköping"));
        assert_eq!(parent.school_uai, None);
        assert_eq!(parent.user_role.as_deref(), Some("parent"));

        let mut batch = vec![event("1.0.0.1", None), event("81.2.69.142", Some("lea.petit"))];
        enricher.enrich_all(&mut batch);
        assert_eq!(batch[0].source_as_number, Some(15169));
        assert_eq!(batch[0].user_role, None);
        assert_eq!(batch[1].source_city.as_deref(), Some("Londres"));
        assert_eq!(batch[1].user_role.as_deref(), Some("eleve"));
    }

    #[test]
    fn an_empty_enricher_changes_nothing() {
        let enricher = Enricher::default();
        let mut e = event("81.2.69.142", Some("lea.petit.ens"));
        let before = e.clone();
        enricher.enrich(&mut e);
        assert_eq!(e, before);
        assert_eq!(enricher.reload_if_changed(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_reloader_swaps_a_replaced_database_and_stops_on_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("location.mmdb");
        std::fs::copy(geoip::tests::data("GeoLite2-Country-Test.mmdb"), &path).unwrap();
        let geo = GeoIp::open(&GeoIpConfig { location: Some(path.clone()), asn: None, optional: false }).unwrap();
        let enricher = Arc::new(Enricher::new(Some(geo), None, None));
        let london: IpAddr = "81.2.69.142".parse().unwrap();
        assert_eq!(enricher.geoip().unwrap().lookup(london).city, None);

        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_geoip_reloader(Arc::clone(&enricher), Duration::from_secs(60), cancel.clone()));
        geoip::tests::replace_atomically(&geoip::tests::data("GeoLite2-City-Test.mmdb"), &path);

        // Paused time: each sleep jumps a minute; the blocking reload holds auto-advance back.
        let mut city = None;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(61)).await;
            city = enricher.geoip().unwrap().lookup(london).city;
            if city.is_some() {
                break;
            }
        }
        assert_eq!(city.as_deref(), Some("Londres"));
        cancel.cancel();
        task.await.unwrap();
    }
}
