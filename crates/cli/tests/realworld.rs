//! What the public capture corpus (`../shared/realworld/`, run by its `run.sh`) found, as tests
//! of the real binary on files of our own that do the same thing. Each test is named after the
//! corpus file that showed the problem.

mod common;

use std::process::Command;

use common::{Server, af_bin, curl, root};

/// A one-entry HAR: `GET url` answered 200 with `text` under `headers` (JSON pairs).
fn har(url: &str, headers: &str, text: &str) -> String {
    format!(
        r#"{{"log":{{"version":"1.2","creator":{{"name":"t","version":"1"}},"entries":[{{
        "startedDateTime":"2026-11-20T11:15:04.120Z","time":12.5,
        "request":{{"method":"GET","url":"{url}","httpVersion":"HTTP/1.1","headers":[],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0}},
        "response":{{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","headers":[{headers}],"cookies":[],
          "content":{{"size":{},"mimeType":"application/json","text":{}}},"redirectURL":"","headersSize":-1,"bodySize":-1}},
        "cache":{{}},"timings":{{"send":1,"wait":10,"receive":1.5}}}}]}}}}"#,
        text.len(),
        serde_json::to_string(text).expect("json")
    )
}

fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn safari_har_gzip_response_decodes_in_every_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"{"fact":"A cat usually has about 12 whiskers on each side of its face."}"#;
    let p = dir.path().join("safari.har");
    std::fs::write(
        &p,
        har(
            "https://mitmproxy.org/fact",
            r#"{"name":"Content-Encoding","value":"gzip"},{"name":"Content-Length","value":"57"}"#,
            text,
        ),
    )
    .expect("write");
    let m = Server::start(&["mock", p.to_str().expect("utf-8"), "--latency", "none"], &[], 1);
    let url = format!("http://{}/fact", m.addrs[0]);
    // curl --compressed asks for gzip and decodes what it is told is gzip (it exited 61 when
    // the header promised gzip over plain bytes).
    let (ok, body) = curl(&["--compressed", &url]);
    assert!(ok, "curl --compressed failed");
    assert_eq!(body, text);
    // A client that asks for gzip and does not decode gets exactly the recorded bytes.
    let (ok, body) = curl(&["-H", "Accept-Encoding: gzip", &url]);
    assert!(ok && body == text, "{body}");
    // Node's fetch (undici) and Python's requests both decode by themselves.
    let (ok, body, err) = output(Command::new("node").args([
        "-e",
        "fetch(process.argv[1]).then(r => r.text()).then(t => process.stdout.write(t))",
        &url,
    ]));
    assert!(ok, "node fetch: {err}");
    assert_eq!(body, text);
    let (ok, body, err) = output(Command::new("python3").args([
        "-c",
        "import requests, sys; r = requests.get(sys.argv[1]); r.raise_for_status(); sys.stdout.write(r.text)",
        &url,
    ]));
    assert!(ok, "python requests (pip install requests): {err}");
    assert_eq!(body, text);
    m.stop();
}

#[test]
fn chrome_har_in_proxy_mode_answers_from_the_requested_host_or_misses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("chrome.har");
    // mitmproxy.org's `/` was answered; www.google.com's `/` failed (`net::ERR_...`).
    let doc = har("http://mitmproxy.org/", "", "mitmproxy home").replace(
        "]}}",
        r#",{"startedDateTime":"2026-11-20T11:15:05Z","time":3,
        "request":{"method":"GET","url":"http://www.google.com/","httpVersion":"HTTP/1.1","headers":[],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},
        "response":{"status":0,"statusText":"","httpVersion":"","headers":[],"cookies":[],"content":{"size":0,"mimeType":""},"redirectURL":"","headersSize":-1,"bodySize":-1,"_error":"net::ERR_INTERNET_DISCONNECTED"},
        "cache":{},"timings":{"send":0,"wait":0,"receive":0}}]}}"#,
    );
    std::fs::write(&p, doc).expect("write");
    let journal = dir.path().join("journal.jsonl");
    let m = Server::start(
        &[
            "mock",
            p.to_str().expect("utf-8"),
            "--latency",
            "none",
            "--journal",
            journal.to_str().expect("utf-8"),
        ],
        &[],
        1,
    );
    let proxy = format!("http://{}", m.addrs[0]);
    let (ok, body) = curl(&["-x", &proxy, "http://mitmproxy.org/"]);
    assert!(ok && body == "mitmproxy home", "{body}");
    // The other host's `/` has no response to replay: a miss, never mitmproxy.org's page.
    let (_, body) = curl(&["-x", &proxy, "-w", "\n%{http_code}", "http://www.google.com/"]);
    assert!(body.ends_with("404") && !body.contains("mitmproxy home"), "{body}");
    m.stop();
    let (j, _) = af_snapshot::read_all(&journal, af_snapshot::ReadOptions::default()).expect("j");
    let how: Vec<&str> =
        j.iter().filter_map(|e| e.tags.get("af.match").and_then(|v| v.as_str())).collect();
    assert_eq!(how, ["exact", "miss"]);
}

#[test]
fn playwright_har_sha1_body_from_the_sidecar_file_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("har-sha1.har");
    let doc = har("http://no.playwright/", "", "x")
        .replace(r#""text":"x""#, r#""_file":"har-sha1-main-response.txt""#);
    std::fs::write(&p, &doc).expect("write");
    std::fs::write(dir.path().join("har-sha1-main-response.txt"), "Hello, world").expect("write");
    let m = Server::start(&["mock", p.to_str().expect("utf-8"), "--latency", "none"], &[], 1);
    let (ok, body) = curl(&["-H", "Host: no.playwright", &format!("http://{}/", m.addrs[0])]);
    assert!(ok && body == "Hello, world", "{body}");
    m.stop();
    // Without the sidecar: the mock says the body is missing instead of serving "" silently.
    std::fs::remove_file(dir.path().join("har-sha1-main-response.txt")).expect("rm");
    let (ok, stdout, err) = output(Command::new(af_bin()).arg("inspect").arg(&p));
    assert!(ok && stdout.contains("body missing"), "{stdout}{err}");
    let mut child = Command::new(af_bin())
        .args(["mock", p.to_str().expect("utf-8"), "--latency", "none"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut seen = String::new();
    let mut r = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    while !seen.contains("serving") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut r, &mut line).expect("read") == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("har-sha1-main-response.txt") && seen.contains("body missing"), "{seen}");
}

#[test]
fn speedscale_demo_import_of_a_recording_directory_writes_beside_it_with_its_whole_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = dir.path().join("recorded-2026-06-12_18-12-07.394946Z");
    std::fs::create_dir_all(rec.join("localhost")).expect("mkdir");
    std::fs::copy(
        root().join("fixtures/proxymock/markdown/2025-08-12_12-18-35.383552Z.md"),
        rec.join("localhost/2025-08-12_12-18-35.383552Z.md"),
    )
    .expect("copy");
    std::fs::write(rec.join("proxymock.log"), "recording outbound traffic on proxy port 4140\n")
        .expect("write");
    // Strict import reads the RRPair and names the log it passed over.
    let (ok, _, err) = output(Command::new(af_bin()).arg("import").arg(&rec));
    assert!(ok, "{err}");
    assert!(err.contains("proxymock.log: not a capture"), "{err}");
    let out = dir.path().join("recorded-2026-06-12_18-12-07.394946Z.jsonl");
    assert!(out.is_file(), "beside the directory, whole name: {err}");
    // Nothing was written inside the directory, so reading it again sees the same exchange.
    let (ok, stdout, _) = output(Command::new(af_bin()).args(["inspect", "--json"]).arg(&rec));
    assert!(ok);
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["read"]["exchanges"], 1);
    // `af import .` from inside the directory lands beside it too, and -o inside is refused.
    std::fs::remove_file(&out).expect("rm");
    let (ok, _, err) = output(Command::new(af_bin()).args(["import", "."]).current_dir(&rec));
    assert!(ok && out.is_file(), "{err}");
    let (ok, _, err) =
        output(Command::new(af_bin()).arg("import").arg(&rec).arg("-o").arg(rec.join("x.jsonl")));
    assert!(!ok && err.contains("inside the input directory"), "{err}");
}

#[test]
fn a_missing_file_is_reported_once_and_one_exchange_is_singular() {
    let (ok, _, err) = output(Command::new(af_bin()).args(["inspect", "/no/such/capture.har"]));
    assert!(!ok);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("one.har");
    std::fs::write(&p, har("https://api.test/x", "", "{}")).expect("write");
    let (ok, stdout, _) = output(Command::new(af_bin()).arg("inspect").arg(&p));
    assert!(ok && stdout.contains("read: 1 exchange from 1 file (har)"), "{stdout}");
}

#[test]
fn ruby_api_subset_non_http_records_are_said_not_silent() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("2025-10-09_14-42-45.559715009Z.json"),
        r#"{"msgType":"rrpair","ts":"2025-10-09T14:42:45.559715009Z","l7protocol":"postgres","uuid":"b0j2jZ6mT0mxxpDCeoNJPQ==","postgres":{}}"#,
    )
    .expect("write");
    std::fs::copy(
        root().join("fixtures/proxymock/json/2025-02-11_21-07-54.542084Z.json"),
        dir.path().join("2025-02-11_21-07-54.542084Z.json"),
    )
    .expect("copy");
    let (ok, stdout, err) = output(Command::new(af_bin()).arg("inspect").arg(dir.path()));
    assert!(ok, "{err}");
    assert!(stdout.contains("1 record of other protocols skipped (postgres 1)"), "{stdout}");
    let (ok, stdout, _) =
        output(Command::new(af_bin()).args(["inspect", "--json"]).arg(dir.path()));
    assert!(ok);
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["read"]["non_http"]["postgres"], 1);
    assert_eq!(doc["read"]["exchanges"], 1);
}

/// A HAR of `n` reads of `/v1/stock/ID` with `ids(i)`, 100 ms apart.
fn stock_har(n: usize, id: impl Fn(usize) -> String) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"startedDateTime":"2026-11-20T11:15:{:02}.{:03}Z","time":12,
        "request":{{"method":"GET","url":"https://inventory.test/v1/stock/{}","httpVersion":"HTTP/1.1","headers":[],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0}},
        "response":{{"status":{},"statusText":"","httpVersion":"HTTP/1.1","headers":[],"cookies":[],"content":{{"size":2,"mimeType":"application/json","text":"{{}}"}},"redirectURL":"","headersSize":-1,"bodySize":2}},
        "cache":{{}},"timings":{{"send":1,"wait":10,"receive":1}}}}"#,
                i / 10,
                (i % 10) * 100,
                id(i),
                if i % 4 == 0 { 429 } else { 200 }
            )
        })
        .collect();
    format!(
        r#"{{"log":{{"version":"1.2","creator":{{"name":"t","version":"1"}},"entries":[{}]}}}}"#,
        entries.join(",")
    )
}

#[test]
fn inventory_reads_with_ids_of_no_known_shape_are_one_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("stock.har");
    // City-named warehouses, then a code: words no shape rule knows.
    let cities = ["oslo", "lima", "kyiv", "rome", "doha", "riga", "baku", "bern"];
    std::fs::write(
        &p,
        stock_har(160, |i| {
            format!("{}-bin{}", cities[i % 8], "abcdefghijklmnopqrst".as_bytes()[i / 8] as char)
        }),
    )
    .expect("write");
    let (ok, stdout, err) = output(Command::new(af_bin()).args(["inspect", "--json"]).arg(&p));
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let eps = doc["endpoints"].as_array().expect("endpoints");
    assert_eq!(eps.len(), 1, "{:#?}", eps.iter().map(|e| &e["endpoint"]).collect::<Vec<_>>());
    assert_eq!(eps[0]["endpoint"], "GET /v1/stock/{id}");
    assert_eq!(eps[0]["calls"], 160);
    // A selector as the API documents it selects them all.
    let (ok, stdout, _) = output(
        Command::new(af_bin())
            .args(["inspect", "--json", "--endpoint", "GET /v1/stock/{sku}"])
            .arg(&p),
    );
    assert!(ok);
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["totals"]["calls"], 160);
}

#[test]
fn templates_from_an_openapi_document_name_the_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("stock.har");
    std::fs::write(&p, stock_har(12, |i| format!("SKU-{}", 10_000 + i))).expect("write");
    let yaml = dir.path().join("inventory.yaml");
    std::fs::write(
        &yaml,
        "openapi: 3.0.3\ninfo: {title: Inventory, version: '1'}\nservers:\n  - url: https://inventory.test/v1\npaths:\n  /stock/{sku}:\n    get: {}\n",
    )
    .expect("write");
    let (ok, stdout, err) = output(
        Command::new(af_bin()).args(["inspect", "--json", "--templates-from"]).arg(&yaml).arg(&p),
    );
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["endpoints"][0]["endpoint"], "GET /v1/stock/{sku}");
    // A document that is not one is a clear error naming it.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: not an api\n").expect("write");
    let (ok, _, err) =
        output(Command::new(af_bin()).args(["inspect", "--templates-from"]).arg(&bad).arg(&p));
    assert!(!ok && err.contains("bad.yaml") && err.contains("not an OpenAPI document"), "{err}");
}
