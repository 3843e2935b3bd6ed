//! The mock over real loopback sockets: faults, HTTP/2, idle connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use af_mock::{Journal, Latency, Mock, MockConfig};
use af_snapshot::{ReadOptions, read_all};

struct Running {
    addr: SocketAddr,
    mock: Arc<Mock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(cfg: MockConfig, journal: Option<&std::path::Path>) -> Running {
    let recorded = vec![
        af_testkit::ex("GET", "https://api.test/users/1").status(200).lasting_ms(5).build(),
        af_testkit::ex("POST", "https://api.test/upload").status(201).build(),
    ];
    let journal = journal.map(|p| Journal::create(p).expect("journal"));
    let mock = Mock::new(&recorded, cfg, journal).expect("mock");
    let listener = af_mock::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(af_mock::serve(listener, mock.clone(), async move {
        let _ = rx.await;
    }));
    Running { addr, mock, stop: Some(tx), server }
}

impl Running {
    async fn stop(mut self) -> Arc<Mock> {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.server.await;
        self.mock
    }
}

/// A blocking HTTP/1.1 exchange on a fresh connection (run off the runtime's threads).
async fn http(addr: SocketAddr, req: String) -> String {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(req.as_bytes()).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_are_capped_counted_and_journaled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jp = dir.path().join("j.jsonl");
    let cfg = MockConfig { max_body: 1 << 20, ..MockConfig::default() };
    let m = start(cfg, Some(&jp)).await;
    let body = "x".repeat(2 << 20);
    let r = http(m.addr, format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{}", &r[..r.len().min(200)]);
    let ok = http(
        m.addr,
        "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            .into(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 201"), "{ok}");
    let mock = m.stop().await;
    assert_eq!(mock.live().snapshot().too_large, 1);
    mock.finish_journal().expect("journal");
    let (j, _) = read_all(&jp, ReadOptions::default()).expect("read");
    assert_eq!(j.iter().filter_map(|e| e.status()).collect::<Vec<_>>(), [413, 201]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_request_is_ended_and_journaled_as_aborted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jp = dir.path().join("j.jsonl");
    let cfg = MockConfig { latency: Latency::Fixed(400.0), ..MockConfig::default() };
    let m = start(cfg, Some(&jp)).await;
    let addr = m.addr;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n").expect("write");
        std::thread::sleep(Duration::from_millis(100));
        drop(s); // gone before the 400 ms response
    })
    .await
    .expect("join");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(m.mock.live().snapshot().inflight, 0, "the abandoned request still ended");
    let mock = m.stop().await;
    mock.finish_journal().expect("journal");
    let (j, _) = read_all(&jp, ReadOptions::default()).expect("read");
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].tags.get("af.aborted"), Some(&serde_json::json!(true)));
    assert!(j[0].error.is_some() && j[0].response.is_none(), "{:?}", j[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_is_served() {
    let m = start(MockConfig::default(), None).await;
    let stream = tokio::net::TcpStream::connect(m.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/users/9", m.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("req");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    drop(sender);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_do_not_stop_service() {
    // The mock's end of every connection is a descriptor of this process.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("rlimit");
    if soft < hard.min(16_384) {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(16_384), hard).expect("raise rlimit");
    }
    let m = start(MockConfig::default(), None).await;
    // The idle clients are another process (Python): 10,000 connections, then wait.
    let script = "import resource,socket,sys\n\
        s,h=resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE,(min(h,16384),h))\n\
        c=[socket.create_connection((sys.argv[1],int(sys.argv[2]))) for _ in range(10000)]\n\
        print(len(c),flush=True); sys.stdin.read()";
    let mut holder = std::process::Command::new("python3")
        .args(["-c", script, &m.addr.ip().to_string(), &m.addr.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = holder.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 16];
        let n = out.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).trim().to_owned()
    })
    .await
    .expect("join");
    assert_eq!(line, "10000", "the holder opened all its connections");
    let r =
        http(m.addr, "GET /users/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    drop(holder.stdin.take());
    let _ = holder.wait();
    m.stop().await;
}
