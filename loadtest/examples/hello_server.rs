//! The benchmark target of `bench/loadtest.sh`: a minimal HTTP/1.1 keep-alive server (hyper)
//! answering `hello` to every request, so the three load generators compared measure
//! themselves, not an application.
//!
//!   cargo run --release -p loadtest --example hello_server -- 127.0.0.1:8099 [THREADS]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    // One socket per client connection: 10,000 of them need more than the usual 1,024.
    let limit = loadtest::raise_open_files_limit()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening on {} (open-file limit {limit}, {threads} threads)", listener.local_addr()?);
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                // EMFILE and the like: keep serving the connections already open.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"hello"))))
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    })
}
