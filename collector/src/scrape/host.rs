//! Host scraper through sysinfo: CPU usage, load averages, memory, swap, each filesystem's space
//! and inodes, and each network interface's traffic, as `host_*` samples.

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use sysinfo::{Disks, MINIMUM_CPU_UPDATE_INTERVAL, Networks, System};

use super::{Sample, ScrapeError};

/// Kept between scrapes so that CPU usage is the average since the previous scrape, like a
/// Prometheus `rate()`, instead of a 200 ms glimpse.
struct HostState {
    system: System,
    last_cpu_refresh: Option<Instant>,
}

static STATE: LazyLock<Mutex<HostState>> =
    LazyLock::new(|| Mutex::new(HostState { system: System::new(), last_cpu_refresh: None }));

pub(super) async fn scrape() -> Result<Vec<Sample>, ScrapeError> {
    // sysinfo reads /proc and may wait for the CPU counters to move: blocking work.
    tokio::task::spawn_blocking(collect).await.map_err(|e| ScrapeError::Task(e.to_string()))
}

fn collect() -> Vec<Sample> {
    let mut samples = Vec::new();
    {
        // A panic elsewhere while holding the lock leaves a System that is still readable.
        let mut state = STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let waited = state.last_cpu_refresh.map(|t| t.elapsed());
        if waited.is_none() {
            state.system.refresh_cpu_usage();
        }
        // sysinfo needs two readings at least this far apart to compute a usage.
        let since = waited.unwrap_or_default();
        if since < MINIMUM_CPU_UPDATE_INTERVAL {
            std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL - since);
        }
        state.system.refresh_cpu_usage();
        state.last_cpu_refresh = Some(Instant::now());
        state.system.refresh_memory();
        let sys = &state.system;
        samples.push(Sample::new("host_cpu_usage_ratio", f64::from(sys.global_cpu_usage()) / 100.0));
        samples.push(Sample::new("host_cpus", sys.cpus().len() as f64));
        samples.push(Sample::new("host_memory_total_bytes", sys.total_memory() as f64));
        samples.push(Sample::new("host_memory_available_bytes", sys.available_memory() as f64));
        samples.push(Sample::new("host_memory_used_bytes", sys.used_memory() as f64));
        samples.push(Sample::new("host_swap_total_bytes", sys.total_swap() as f64));
        samples.push(Sample::new("host_swap_used_bytes", sys.used_swap() as f64));
    }
    let load = System::load_average();
    samples.push(Sample::new("host_load1", load.one));
    samples.push(Sample::new("host_load5", load.five));
    samples.push(Sample::new("host_load15", load.fifteen));
    samples.push(Sample::new("host_uptime_seconds", System::uptime() as f64));

    for disk in Disks::new_with_refreshed_list().list() {
        let mount = disk.mount_point().to_string_lossy().into_owned();
        let device = disk.name().to_string_lossy().into_owned();
        let fstype = disk.file_system().to_string_lossy().into_owned();
        let fs = |name: &str, v: f64| {
            Sample::new(name, v)
                .with_label("mountpoint", mount.as_str())
                .with_label("device", device.as_str())
                .with_label("fstype", fstype.as_str())
        };
        samples.push(fs("host_filesystem_size_bytes", disk.total_space() as f64));
        samples.push(fs("host_filesystem_avail_bytes", disk.available_space() as f64));
        // A disk can fill its inode table with space left (session files, mail queues).
        match rustix::fs::statvfs(disk.mount_point()) {
            // Filesystems without a fixed inode table (btrfs) report zero files: nothing to watch.
            Ok(st) if st.f_files > 0 => {
                samples.push(fs("host_filesystem_files", st.f_files as f64));
                samples.push(fs("host_filesystem_files_free", st.f_favail as f64));
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(mountpoint = %mount, %error, "statvfs failed"),
        }
    }

    for (interface, data) in Networks::new_with_refreshed_list().list() {
        let net = |name: &str, v: u64| Sample::new(name, v as f64).with_label("device", interface.as_str());
        samples.push(net("host_network_receive_bytes_total", data.total_received()));
        samples.push(net("host_network_transmit_bytes_total", data.total_transmitted()));
        samples.push(net("host_network_receive_errors_total", data.total_errors_on_received()));
        samples.push(net("host_network_transmit_errors_total", data.total_errors_on_transmitted()));
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::{Target, scrape as scrape_target};
    use std::time::Duration;

    fn find<'s>(samples: &'s [Sample], name: &str) -> Vec<&'s Sample> {
        samples.iter().filter(|s| s.name == name).collect()
    }

    #[tokio::test]
    async fn scrapes_this_host() {
        let s = scrape_target(&Target::Host, Duration::from_secs(30)).await;
        assert!(s.up, "{:?}", s.error);
        assert_eq!(s.target, "host");
        let one = |name: &str| {
            let found = find(&s.samples, name);
            assert_eq!(found.len(), 1, "{name}");
            found[0].value
        };
        let cpu = one("host_cpu_usage_ratio");
        assert!((0.0..=1.0).contains(&cpu), "{cpu}");
        assert!(one("host_cpus") >= 1.0);
        let total = one("host_memory_total_bytes");
        assert!(total > 0.0);
        assert!(one("host_memory_available_bytes") <= total);
        assert!(one("host_swap_used_bytes") <= one("host_swap_total_bytes"));
        assert!(one("host_load1") >= 0.0 && one("host_load15") >= 0.0);
        assert!(one("host_uptime_seconds") > 0.0);

        let sizes = find(&s.samples, "host_filesystem_size_bytes");
        assert!(!sizes.is_empty(), "no filesystem found");
        for size in &sizes {
            let mount = &size.labels[0];
            assert_eq!(mount.0, "mountpoint");
            let avail =
                s.samples.iter().find(|x| x.name == "host_filesystem_avail_bytes" && x.labels == size.labels).unwrap();
            assert!(avail.value <= size.value, "{mount:?}");
        }
        // Inodes come from statvfs; at least one usual filesystem (ext4, xfs, overlay) has them.
        let files = find(&s.samples, "host_filesystem_files");
        assert!(!files.is_empty());
        for f in files {
            let free =
                s.samples.iter().find(|x| x.name == "host_filesystem_files_free" && x.labels == f.labels).unwrap();
            assert!(free.value <= f.value);
        }
        let rx = find(&s.samples, "host_network_receive_bytes_total");
        assert!(!rx.is_empty(), "no network interface found");
        assert!(rx.iter().all(|x| x.labels[0].0 == "device" && x.value >= 0.0));

        // A second scrape measures CPU since the first one.
        let again = scrape_target(&Target::Host, Duration::from_secs(30)).await;
        assert!(again.up);
        assert_eq!(find(&again.samples, "host_cpu_usage_ratio").len(), 1);
    }
}
