//! Helpers: start `vigie`, find free ports, poll HTTP endpoints with a deadline.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn vigie() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigie"));
    cmd.env("RUST_LOG", "info,tantivy=warn");
    cmd
}

/// The shared fixtures (`../shared/data`, or `VIGIE_SHARED_DATA`).
pub(crate) fn shared_data() -> std::path::PathBuf {
    std::env::var_os("VIGIE_SHARED_DATA")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// A port nothing listens on right now, that no other test of this run is given, and that
/// outgoing connections do not take meanwhile: it is below Linux's ephemeral range (32768 and
/// up), where the kernel picks both `bind(0)`'s ports and the local ports of the parallel
/// tests' connections — a port found free there could be taken again before `vigie` binds it
/// ("Address already in use" at a restart on the same port).
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Each run starts elsewhere in the range, so that two runs at once rarely meet.
    let start = std::process::id() % PORTS;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < PORTS, "no free port left in {FIRST}..{}", FIRST + PORTS);
        let port = u16::try_from(FIRST + (start + n) % PORTS).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running `vigie` process, killed if the test ends early.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) base: String,
    log: std::path::PathBuf,
}

impl Running {
    pub(crate) fn demo(data: &Path, extra: &[&str]) -> Running {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["demo".to_owned(), "--listen".into(), listen.clone(), "--data".into()];
        args.push(data.display().to_string());
        args.extend(extra.iter().map(|a| a.to_string()));
        Running::start(&args, &listen, &data.with_extension(format!("{port}.log")))
    }

    /// `vigie run --config FILE`, whose `[server] listen` is `listen`.
    pub(crate) fn run(config: &Path, listen: &str) -> Running {
        let args = ["run".to_owned(), "--config".into(), config.display().to_string()];
        Running::start(&args, listen, &config.with_extension("log"))
    }

    fn start(args: &[String], listen: &str, log: &Path) -> Running {
        let child = vigie()
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start vigie");
        Running { child, base: format!("http://{listen}"), log: log.to_owned() }
    }

    /// Asks for a clean stop, as systemd does.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`: status and body, or None if nothing answers (yet).
    pub(crate) fn get(&self, path: &str) -> Option<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut response = agent.get(&format!("{}{path}", self.base)).call().ok()?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().ok()?;
        Some((status, body))
    }

    /// Polls until `check` holds, or panics with the process log after `timeout`.
    pub(crate) fn wait_for(&mut self, what: &str, timeout: Duration, mut check: impl FnMut(&Running) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vigie exited ({status}) while waiting for {what}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out after {timeout:?} waiting for {what}; log:\n{}", self.log());
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("vigie did not stop by itself within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first sample of `metric` whose line contains `labels`, from Prometheus text.
pub(crate) fn sample(metrics: &str, metric: &str, labels: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(metric) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
