//! `af record` with real clients (curl, Python) and real upstreams (`af mock`, over HTTP and
//! HTTPS) on loopback.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Server, af_bin, curl, root};

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("snapshot")
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect()
}

const MSG: &str = "/gmail/v1/users/me/messages/abc123?format=metadata";

#[test]
fn reverse_forward_and_intercepted_https_are_recorded_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    let cacert = ca.join("ca.pem");
    let out = dir.path().join("rec.jsonl");
    let plain = Server::start(
        &["mock", "fixtures/gmail/capture.har", "--latency", "none"],
        &[("AF_CA_DIR", &ca)],
        1,
    );
    let tls = Server::start(
        &["mock", "fixtures/gmail/capture.har", "--latency", "none", "--tls"],
        &[("AF_CA_DIR", &ca)],
        1,
    );
    let upstream = format!("127.0.0.1:0=http://{}", plain.addrs[0]);
    // The recorder verifies the HTTPS upstream against SSL_CERT_FILE (our CA), as it would the
    // system roots.
    let rec = Server::start(
        &[
            "record",
            "-o",
            out.to_str().expect("utf-8"),
            "--reverse",
            &upstream,
            "--forward",
            "--listen",
            "127.0.0.1:0",
        ],
        &[("AF_CA_DIR", &ca), ("SSL_CERT_FILE", &cacert)],
        2,
    );
    let (reverse, forward) = (&rec.addrs[0], &rec.addrs[1]);
    let (ok, body) =
        curl(&["-H", "Authorization: Bearer SECRET-token", &format!("http://{reverse}{MSG}")]);
    assert!(ok && body.contains("\"snippet\""), "{body}");
    let (ok, body) = curl(&[
        "--proxy",
        &format!("http://{forward}"),
        &format!("http://{}{MSG}", plain.addrs[0]),
    ]);
    assert!(ok && body.contains("\"snippet\""), "{body}");
    let tls_port = tls.addrs[0].rsplit(':').next().expect("port");
    let cacert_s = cacert.to_str().expect("utf-8");
    let (ok, body) = curl(&[
        "--proxy",
        &format!("http://{forward}"),
        "--cacert",
        cacert_s,
        &format!("https://localhost:{tls_port}{MSG}"),
    ]);
    assert!(ok && body.contains("\"snippet\""), "{body}");
    // Upstream down: 502 to the client, a transport error in the snapshot.
    let (_, body) = curl(&["--proxy", &format!("http://{forward}"), "http://127.0.0.1:1/nothing"]);
    assert!(body.contains("refused"), "{body}");
    assert!(rec.stop().success());
    plain.stop();
    tls.stop();

    let recorded = lines(&out);
    assert_eq!(recorded.len(), 4);
    let text = std::fs::read_to_string(&out).expect("read");
    assert!(!text.contains("SECRET-token"), "credentials are redacted by default");
    assert!(
        recorded[0]["caller"].as_str().is_some_and(|c| c.starts_with("key:")),
        "caller hashed before redaction"
    );
    let modes: Vec<&str> =
        recorded.iter().map(|e| e["tags"]["af.record"].as_str().expect("mode")).collect();
    assert_eq!(modes, ["reverse", "forward", "tunnel", "forward"]);
    assert!(recorded[2]["request"]["url"].as_str().expect("url").starts_with("https://localhost:"));
    assert_eq!(recorded[3]["error"]["kind"], "refused");
    for e in &recorded[..3] {
        assert_eq!(e["response"]["status"], 200);
        assert!(
            e["timing"]["ttfb_ns"].as_u64().expect("ttfb")
                <= e["timing"]["duration_ns"].as_u64().expect("duration")
        );
    }
    // The snapshot replays through af mock: the same request gets the same body.
    let replay =
        Server::start(&["mock", out.to_str().expect("utf-8"), "--latency", "none"], &[], 1);
    let (ok, body) = curl(&[&format!("http://{}{MSG}", replay.addrs[0])]);
    replay.stop();
    assert!(ok && body.contains("\"snippet\""), "{body}");
}

#[test]
fn wrapping_a_program_records_its_calls_and_returns_its_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    let out = dir.path().join("wrapped.jsonl");
    let upstream =
        Server::start(&["mock", "fixtures/gmail/capture.har", "--latency", "fixed:20ms"], &[], 1);
    let status = Command::new(af_bin())
        .current_dir(root())
        .env("AF_CA_DIR", &ca)
        .env("API_URL", format!("http://{}", upstream.addrs[0]))
        .env("WORKERS", "5")
        .env("N", "12")
        .args([
            "record",
            "-o",
            out.to_str().expect("utf-8"),
            "--",
            "python3",
            "fixtures/programs/fanout.py",
        ])
        .status()
        .expect("record");
    upstream.stop();
    assert!(status.success());
    let recorded = lines(&out);
    assert_eq!(recorded.len(), 12, "every call of the program went through the proxy");
    assert!(recorded.iter().all(|e| e["response"]["status"] == 200));
    let failing = Command::new(af_bin())
        .current_dir(root())
        .env("AF_CA_DIR", &ca)
        .args(["record", "--force", "-o", out.to_str().expect("utf-8"), "--", "sh", "-c", "exit 7"])
        .status()
        .expect("record");
    assert_eq!(failing.code(), Some(7));
}

#[test]
fn a_killed_recorder_leaves_a_readable_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("killed.jsonl");
    let upstream =
        Server::start(&["mock", "fixtures/gmail/capture.har", "--latency", "none"], &[], 1);
    let route = format!("127.0.0.1:0=http://{}", upstream.addrs[0]);
    let mut rec =
        Server::start(&["record", "-o", out.to_str().expect("utf-8"), "--reverse", &route], &[], 1);
    for _ in 0..5 {
        assert!(curl(&[&format!("http://{}{MSG}", rec.addrs[0])]).0);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    rec.child.kill().expect("kill -9");
    let _ = rec.child.wait();
    upstream.stop();
    let out_s = out.to_str().expect("utf-8");
    let inspect = Command::new(af_bin())
        .args(["inspect", "--json", "--no-findings", out_s])
        .output()
        .expect("inspect");
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("JSON");
    assert_eq!(doc["totals"]["calls"], 5, "every completed exchange was on disk before the kill");
}

#[test]
fn bodies_stream_whole_but_only_max_body_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("big.jsonl");
    let upstream =
        Server::start(&["mock", "fixtures/gmail/capture.har", "--latency", "none"], &[], 1);
    let route = format!("127.0.0.1:0=http://{}", upstream.addrs[0]);
    let rec = Server::start(
        &["record", "-o", out.to_str().expect("utf-8"), "--reverse", &route, "--max-body", "100"],
        &[],
        1,
    );
    let big = "x".repeat(3 << 20);
    let file = dir.path().join("big.txt");
    std::fs::write(&file, &big).expect("write");
    let (ok, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{}/gmail/v1/users/me/messages", rec.addrs[0]),
    ]);
    assert!(ok);
    let (ok, body) = curl(&[&format!("http://{}{MSG}", rec.addrs[0])]);
    assert!(ok && body.len() > 100, "the client gets the whole body");
    rec.stop();
    upstream.stop();
    let recorded = lines(&out);
    let req_body = &recorded[0]["request"]["body"];
    assert_eq!(req_body["size"], 3 << 20, "{req_body}");
    assert_eq!(req_body["truncated"], true);
    assert_eq!(req_body["text"].as_str().expect("text").len(), 100);
    assert_eq!(recorded[1]["response"]["body"]["truncated"], true);
}

#[test]
fn a_node_client_through_the_forward_proxy_keeps_its_connection_and_chunked_bodies_arrive_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("node.jsonl");
    let mut upstream = Command::new("node")
        .current_dir(root())
        .arg("fixtures/programs/chunked_upstream.js")
        .stdout(Stdio::piped())
        .spawn()
        .expect("node upstream");
    let mut port = String::new();
    std::io::BufReader::new(upstream.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port");
    let target = format!("http://127.0.0.1:{}", port.trim());
    let rec = Server::start(
        &["record", "-o", out.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"],
        &[("AF_CA_DIR", &dir.path().join("ca"))],
        1,
    );
    let client = Command::new("node")
        .current_dir(root())
        .env("PROXY", format!("http://{}", rec.addrs[0]))
        .env("TARGET", &target)
        .arg("fixtures/programs/proxy_client.js")
        .output()
        .expect("node client");
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let said = String::from_utf8_lossy(&client.stdout);
    assert!(
        said.starts_with("200 part-0;part-1;part-2;"),
        "the chunked body reached the client whole: {said}"
    );
    rec.stop();
    let _ = upstream.kill();
    let _ = upstream.wait();
    let recorded = lines(&out);
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0]["response"]["body"]["text"], "part-0;part-1;part-2;");
    let conns: std::collections::BTreeSet<&str> =
        recorded.iter().map(|e| e["conn_id"].as_str().expect("conn")).collect();
    assert_eq!(conns.len(), 1, "one keep-alive connection from the client: {conns:?}");
    assert!(!std::fs::read_to_string(&out).expect("read").contains("SECRET-node"));
}

#[test]
fn an_http2_upstream_and_a_client_leaving_mid_response_are_recorded_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    let cacert = ca.join("ca.pem");
    let out = dir.path().join("h2.jsonl");
    // af mock --tls offers h2 by ALPN; the recorder's client takes it.
    let tls = Server::start(
        &["mock", "fixtures/gmail/capture.har", "--latency", "none", "--tls"],
        &[("AF_CA_DIR", &ca)],
        1,
    );
    let tls_port = tls.addrs[0].rsplit(':').next().expect("port").to_owned();
    let mut upstream = Command::new("node")
        .current_dir(root())
        .arg("fixtures/programs/chunked_upstream.js")
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    let mut port = String::new();
    std::io::BufReader::new(upstream.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port");
    let h2_route = format!("127.0.0.1:0=https://localhost:{tls_port}");
    let slow_route = format!("127.0.0.1:0=http://127.0.0.1:{}", port.trim());
    let rec = Server::start(
        &[
            "record",
            "-o",
            out.to_str().expect("utf-8"),
            "--reverse",
            &h2_route,
            "--reverse",
            &slow_route,
        ],
        &[("AF_CA_DIR", &ca), ("SSL_CERT_FILE", &cacert)],
        2,
    );
    assert!(curl(&[&format!("http://{}{MSG}", rec.addrs[0])]).0);
    // The client gives up after 300 ms of a 2 s response.
    let (ok, _) = curl(&["--max-time", "0.3", &format!("http://{}/slow", rec.addrs[1])]);
    assert!(!ok);
    std::thread::sleep(std::time::Duration::from_millis(300));
    rec.stop();
    tls.stop();
    let _ = upstream.kill();
    let _ = upstream.wait();
    let recorded = lines(&out);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0]["response"]["http_version"], "HTTP/2.0");
    assert_eq!(recorded[1]["tags"]["af.aborted"], true, "{}", recorded[1]);
    assert_eq!(recorded[1]["response"]["body"]["text"], "started;");
    assert_eq!(recorded[1]["response"]["body"]["truncated"], true);
}

#[test]
fn a_non_tls_connect_tunnel_is_passed_through_untouched_and_recorded_as_one_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("raw.jsonl");
    let rec = Server::start(
        &["record", "-o", out.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"],
        &[("AF_CA_DIR", &dir.path().join("ca"))],
        1,
    );
    let (host, port) = rec.addrs[0].split_once(':').expect("addr");
    // An echo server speaking no HTTP at all, and a client that tunnels to it through CONNECT.
    let script = r#"
import socket, sys, threading
echo = socket.socket(); echo.bind(("127.0.0.1", 0)); echo.listen(1)
def serve():
    c, _ = echo.accept()
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
threading.Thread(target=serve, daemon=True).start()
p = socket.create_connection((sys.argv[1], int(sys.argv[2])))
p.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % echo.getsockname()[1])
head = b""
while b"\r\n\r\n" not in head:
    head += p.recv(1)
assert head.startswith(b"HTTP/1.1 200"), head
p.sendall(b"\x00\x01 not http, not tls \xff")
got = b""
while len(got) < 22:
    got += p.recv(64)
p.close()
print(got == b"\x00\x01 not http, not tls \xff")
"#;
    let py = Command::new("python3").args(["-c", script, host, port]).output().expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "True",
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    rec.stop();
    let recorded = lines(&out);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["request"]["method"], "CONNECT");
    assert!(recorded[0]["request"]["url"].as_str().expect("url").starts_with("tcp://127.0.0.1:"));
    assert_eq!(recorded[0]["tags"]["af.bytes_up"], 22);
    assert_eq!(recorded[0]["tags"]["af.bytes_down"], 22);
}

#[test]
fn a_client_that_gives_up_before_the_upstream_answers_is_recorded_as_aborted() {
    // The upstream answers after 2 s; the client waits 0.3 s. Before, the exchange was dropped
    // with the cancelled request: a capture of a slow upstream lost every timed-out call.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("aborted.jsonl");
    let upstream =
        Server::start(&["mock", "fixtures/gmail/capture.har", "--latency", "fixed:2s"], &[], 1);
    let route = format!("127.0.0.1:0=http://{}", upstream.addrs[0]);
    let rec =
        Server::start(&["record", "-o", out.to_str().expect("utf-8"), "--reverse", &route], &[], 1);
    let (ok, _) = curl(&["--max-time", "0.3", &format!("http://{}{MSG}", rec.addrs[0])]);
    assert!(!ok, "the client timed out");
    std::thread::sleep(std::time::Duration::from_millis(300));
    rec.stop();
    upstream.stop();
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["error"]["kind"], "aborted", "{}", got[0]);
    assert!(got[0]["timing"]["duration_ns"].as_u64().is_some_and(|d| d < 1_500_000_000));
}
