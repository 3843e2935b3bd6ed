//! Integration tests of the formats against committed fixtures and generated files.

use std::io::Write;
use std::path::{Path, PathBuf};

use af_snapshot::*;
use proptest::prelude::*;

mod paths;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
}

fn read(rel: &str) -> Vec<Exchange> {
    read_all(&fixture(rel), ReadOptions::default()).expect(rel).0
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("valid timestamp")
}

fn write_native(exchanges: &[Exchange], path: &Path, zstd: bool) {
    let mut w = Writer::create(path, OutputFormat::Native { zstd }, true).expect("create");
    for e in exchanges {
        w.write(e).expect("write");
    }
    w.finish().expect("finish");
}

fn write_har(exchanges: &[Exchange], path: &Path) {
    let mut w = Writer::create(path, OutputFormat::Har, false).expect("create");
    for e in exchanges {
        w.write(e).expect("write");
    }
    w.finish().expect("finish");
}

// ---------------------------------------------------------------- native

#[test]
fn native_v1_fixture_loads_every_field() {
    let ex = read("formats/native-v1.jsonl");
    assert_eq!(ex.len(), 4);
    let full = &ex[0];
    assert_eq!(full.id.as_str(), "3f2a9c0d11e4b7a0");
    assert_eq!(full.service.as_deref(), Some("mail-sync"));
    assert_eq!(full.caller.as_deref(), Some("user:alice"));
    assert_eq!(full.conn_id.as_deref(), Some("c1"));
    let traces: Vec<&str> = full
        .request
        .headers
        .iter()
        .filter(|(k, _)| k == "X-Trace")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(traces, ["a", "b"], "repeated headers keep order");
    assert_eq!(full.status(), Some(204));
    assert_eq!(full.timing.start, ts("2026-11-20T11:15:04.120123Z"));
    assert_eq!(full.timing.ttfb_ns, Some(47_900_000));
    assert_eq!(full.timing.phases.as_ref().and_then(|p| p.wait_ns), Some(47_650_000));
    assert_eq!(full.tags.get("note").and_then(|v| v.as_str()), Some("every field in use"));

    let png = ex[1].response.as_ref().and_then(|r| r.body.as_ref()).expect("body");
    assert!(matches!(png.data, BodyData::Binary(_)));
    assert!(png.truncated);
    assert_eq!(png.size, 4096);

    assert_eq!(ex[2].response, None);
    assert_eq!(ex[2].error.as_ref().map(|e| e.kind), Some(ErrorKind::Refused));
    assert_eq!(ex[3].direction, Direction::Inbound);
    assert_eq!(ex[3].timing.start.as_nanos() % 1_000, 1, "nanosecond precision kept");
    assert_eq!(ex[3].response, None);
    assert_eq!(ex[3].error, None);
}

#[test]
fn native_round_trips_plain_and_zstd() {
    let ex = read("formats/native-v1.jsonl");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, zstd) in [("a.jsonl", false), ("a.jsonl.zst", true)] {
        let p = dir.path().join(name);
        write_native(&ex, &p, zstd);
        let (back, s) = read_all(&p, ReadOptions::default()).expect("reads back");
        assert_eq!(back, ex, "{name}");
        assert_eq!(s.files[0].1, Format { kind: FormatKind::Native, zstd });
    }
}

#[test]
fn zstd_is_detected_by_content_not_extension() {
    let ex = read("formats/native-v1.jsonl");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("a.jsonl.zst");
    write_native(&ex, &p, true);
    let renamed = dir.path().join("capture.data");
    std::fs::rename(&p, &renamed).expect("rename");
    assert_eq!(read_all(&renamed, ReadOptions::default()).expect("reads").0, ex);
}

#[test]
fn parallel_fold_sees_every_exchange_once() {
    let base = read("gmail/capture.har");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("big.jsonl");
    // Enough lines for many 1 MiB blocks.
    let many: Vec<Exchange> = (0..40)
        .flat_map(|round| {
            base.iter().enumerate().map(move |(i, e)| {
                let mut e = e.clone();
                e.id = ExchangeId::new(format!("{round:03}{i:05}"));
                e
            })
        })
        .collect();
    write_native(&many, &p, false);
    let (accs, summary) =
        fold_paths(&[p], ReadOptions::default(), 3, &Vec::new, &|v: &mut Vec<String>, e| {
            v.push(e.id.as_str().to_owned())
        })
        .expect("folds");
    let mut ids: Vec<String> = accs.into_iter().flatten().collect();
    ids.sort();
    let mut want: Vec<String> = many.iter().map(|e| e.id.as_str().to_owned()).collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(summary.exchanges, many.len() as u64);
}

#[test]
fn killed_writer_leaves_a_readable_file() {
    // A recorder killed mid-write: complete lines, then half a line and no newline.
    let ex = read("formats/native-v1.jsonl");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("killed.jsonl");
    write_native(&ex, &p, false);
    let mut text = std::fs::read(&p).expect("read");
    text.extend_from_slice(br#"{"id":"deadbeef","request":{"method":"GET","url":"ht"#);
    std::fs::write(&p, &text).expect("write");
    for threads in [1, 2] {
        let (accs, s) = fold_paths(
            std::slice::from_ref(&p),
            ReadOptions::default(),
            threads,
            &|| 0u64,
            &|n: &mut u64, _| *n += 1,
        )
        .expect("strict mode still reads it");
        assert_eq!(accs.iter().sum::<u64>(), 4);
        assert_eq!(s.truncated_tails.len(), 1, "the partial line is reported, not hidden");
        assert_eq!(s.truncated_tails[0].line, Some(6));
    }
}

#[test]
fn newer_format_versions_are_refused_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("v9.jsonl");
    std::fs::write(&p, "{\"format\":\"af-snapshot\",\"version\":9}\n").expect("write");
    let err = read_all(&p, ReadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("version 9") && err.contains("upgrade"), "{err}");
}

// ---------------------------------------------------------------- HAR

#[test]
fn browser_har_keeps_custom_fields_and_turns_status_0_into_an_error() {
    let ex = read("har/browser.har");
    assert_eq!(ex.len(), 3);
    let post = &ex[0];
    assert_eq!(
        post.timing.start,
        ts("2026-11-20T11:15:04.101Z"),
        "offset +01:00 normalised to UTC"
    );
    assert_eq!(post.timing.duration_ns, Some(87_419_000));
    // blocked + send + wait (ms) = 1.204 + 0.155 + 85.1
    assert_eq!(post.timing.ttfb_ns, Some(86_459_000));
    assert_eq!(post.conn_id.as_deref(), Some("48211"));
    assert_eq!(post.tags.get("_resourceType").and_then(|v| v.as_str()), Some("fetch"));
    assert!(
        post.tags.get("_initiator").is_some_and(|v| v.is_object()),
        "structured custom fields kept"
    );
    assert_eq!(post.tags.get("serverIPAddress").and_then(|v| v.as_str()), Some("203.0.113.10"));
    assert_eq!(
        post.request.body.as_ref().and_then(|b| b.as_text()),
        Some("{\"sku\":\"A-1\",\"quantity\":2}")
    );
    assert_eq!(post.status(), Some(201));

    let img = ex[1].response.as_ref().and_then(|r| r.body.as_ref()).expect("image body");
    assert!(img.bytes().starts_with(b"\x89PNG"), "base64 content decoded");

    let refused = &ex[2];
    assert_eq!(refused.response, None, "status 0 is not a status");
    assert_eq!(refused.error.as_ref().map(|e| e.kind), Some(ErrorKind::Refused));
    assert_eq!(
        refused.error.as_ref().map(|e| e.message.as_str()),
        Some("net::ERR_CONNECTION_REFUSED")
    );
}

#[test]
fn mitmproxy_har_keeps_encoded_bodies_and_phases() {
    let ex = read("har/mitmproxy.har");
    assert_eq!(ex.len(), 2);
    let first = &ex[0];
    assert_eq!(first.timing.start, ts("2026-11-20T11:15:04.120456Z"), "microseconds kept");
    let phases = first.timing.phases.as_ref().expect("phases");
    assert_eq!(phases.ssl_ns, Some(6_012_000));
    assert_eq!(phases.dns_ns, None, "-1 means not applicable");
    let body = first.response.as_ref().and_then(|r| r.body.as_ref()).expect("body");
    assert!(body.bytes().starts_with(&[0x1f, 0x8b]), "gzip bytes stored as captured");
    assert_eq!(
        header(&first.response.as_ref().expect("response").headers, "content-encoding"),
        Some("gzip")
    );
    assert_eq!(ex[1].status(), Some(429));
}

#[test]
fn native_to_har_to_native_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for rel in [
        "formats/native-v1.jsonl",
        "har/browser.har",
        "har/mitmproxy.har",
        "gmail/capture.har",
        "proxymock/markdown",
    ] {
        let original = read(rel);
        let har = dir.path().join("x.har");
        write_har(&original, &har);
        let back = read_all(&har, ReadOptions::default()).expect("HAR reads back").0;
        assert_eq!(back, original, "{rel}");
    }
}

#[test]
fn exported_har_is_valid_har_1_2_for_other_tools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let har = dir.path().join("x.har");
    write_har(&read("formats/native-v1.jsonl"), &har);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&har).expect("read")).expect("JSON");
    assert_eq!(v["log"]["version"], "1.2");
    for e in v["log"]["entries"].as_array().expect("entries") {
        for field in ["startedDateTime", "time", "request", "response", "cache", "timings"] {
            if field != "cache" {
                assert!(e.get(field).is_some(), "entry lacks {field}");
            }
        }
        for field in [
            "method",
            "url",
            "httpVersion",
            "headers",
            "queryString",
            "cookies",
            "headersSize",
            "bodySize",
        ] {
            assert!(e["request"].get(field).is_some(), "request lacks {field}");
        }
        for field in ["status", "statusText", "httpVersion", "headers", "content", "redirectURL"] {
            assert!(e["response"].get(field).is_some(), "response lacks {field}");
        }
        for (k, _) in e.as_object().expect("object") {
            let standard = [
                "startedDateTime",
                "time",
                "request",
                "response",
                "cache",
                "timings",
                "serverIPAddress",
                "connection",
                "pageref",
                "comment",
            ];
            assert!(standard.contains(&k.as_str()) || k.starts_with('_'), "non-standard field {k}");
        }
    }
}

// ---------------------------------------------------------------- proxymock

#[test]
fn proxymock_json_lines_and_single_files() {
    let lines = read("proxymock/jsonl/openai.jsonl");
    assert_eq!(
        lines.iter().map(|e| e.status()).collect::<Vec<_>>(),
        [Some(200), Some(429), Some(200), Some(200)]
    );
    assert_eq!(lines[0].request.url, "https://api.openai.com/v1/chat/completions");
    assert_eq!(lines[0].timing.duration_ns, Some(1_130_000_000));
    assert_eq!(lines[0].id.as_str().len(), 32, "uuid becomes the id");
    assert_eq!(lines[0].tags.get("proxyVersion").and_then(|v| v.as_str()), Some("v2.3.290"));
    assert!(
        lines[0]
            .request
            .body
            .as_ref()
            .and_then(|b| b.as_text())
            .is_some_and(|t| t.contains("haiku"))
    );

    let files = read("proxymock/json");
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].request.url, "https://dynamodb.us-west-2.amazonaws.com/", "port 0 dropped");
    assert_eq!(files[0].status(), Some(500));
    assert_eq!(
        header(&files[0].request.headers, "X-Amz-Target"),
        Some("DynamoDB_20120810.CreateTable")
    );
}

#[test]
fn proxymock_markdown_quirks() {
    let md = read("proxymock/markdown");
    assert_eq!(md.len(), 3);
    // Fenced, with status line, escaped commas.
    let put = &md[0];
    assert_eq!(put.request.method, "PUT");
    assert_eq!(header(&put.request.headers, "Accept"), Some("application/json, */*"));
    assert_eq!(
        header(&put.response.as_ref().expect("response").headers, "Date"),
        Some("Tue, 12 Aug 2025 12:18:35 GMT")
    );
    assert_eq!(put.id.as_str(), "c887053324b343128566cd09fe0e15e3");
    assert_eq!(put.timing.duration_ns, Some(14_000_000));
    assert_eq!(
        put.request.body.as_ref().and_then(|b| b.as_text()),
        Some("{\"content\": \"buy milk, eggs\", \"pinned\": true}")
    );
    // Sections out of order, no status line: the status comes from the trailing JSON.
    let limited = &md[1];
    assert_eq!(limited.status(), Some(429));
    assert_eq!(limited.request.url, "http://localhost:8080/v1/api/notes?limit=20");
    assert_eq!(
        limited.response.as_ref().and_then(|r| r.status_text.as_deref()),
        Some("Too Many Requests")
    );
    // Old bare form: no fences, no ts in METADATA (from the file name), top-level status only.
    let health = &md[2];
    assert_eq!(health.status(), Some(200));
    assert_eq!(health.timing.start, ts("2025-08-12T12:18:37.5Z"));
    assert_eq!(
        health.response.as_ref().and_then(|r| r.body.as_ref()).and_then(|b| b.as_text()),
        Some("ok")
    );
}

#[test]
fn markdown_and_json_forms_of_one_uuid_share_an_id() {
    let md = read("proxymock/markdown");
    // The INTERNAL JSON of the second file carries the base64 form of the METADATA uuid.
    assert_eq!(md[1].id.as_str(), "0b6f6e7a1c2d4e3f8a9b0c1d2e3f4a5b");
}

// ---------------------------------------------------------------- bad input

fn bad(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join(name);
    std::fs::write(&p, content).expect("write");
    (dir, p)
}

fn strict_error(p: &Path) -> String {
    read_all(p, ReadOptions::default()).expect_err("must fail").to_string()
}

#[test]
fn malformed_json_line_names_file_line_and_column() {
    let text = "{\"format\":\"af-snapshot\",\"version\":1}\n{\"id\":\"a\",\"request\":{\"method\":\"GET\",\"url\":\"/x\"},\"timing\":{\"start\":\"2026-11-20T11:15:04Z\"}}\n{\"id\":\"b\",\"request\":{\"method\":\"GET\",\n";
    let (_d, p) = bad("bad.jsonl", text.as_bytes());
    let err = strict_error(&p);
    assert!(err.contains("bad.jsonl:3:"), "{err}");
    let (accs, s) = fold_paths(
        std::slice::from_ref(&p),
        ReadOptions { lenient: true, ..ReadOptions::default() },
        1,
        &|| 0u64,
        &|n: &mut u64, _| *n += 1,
    )
    .expect("lenient");
    assert_eq!((accs.iter().sum::<u64>(), s.skipped), (1, 1));
}

#[test]
fn wrong_field_type_names_the_field() {
    let text = "{\"format\":\"af-snapshot\",\"version\":1}\n{\"id\":\"a\",\"request\":{\"method\":\"GET\",\"url\":\"/x\"},\"response\":{\"status\":\"ok\"},\"timing\":{\"start\":\"2026-11-20T11:15:04Z\"}}\n";
    let (_d, p) = bad("t.jsonl", text.as_bytes());
    let err = strict_error(&p);
    assert!(err.contains("t.jsonl:2:") && err.contains("field `response.status`"), "{err}");
}

#[test]
fn truncated_zstd_is_an_error_with_offset_and_lenient_keeps_the_prefix() {
    let ex = read("gmail/capture.har");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("t.jsonl.zst");
    // Line-flushed, as a recorder writes: every exchange ends a zstd block.
    let mut w = Writer::create(&p, OutputFormat::Native { zstd: true }, true).expect("create");
    for _ in 0..20 {
        for e in &ex {
            w.write(e).expect("write");
        }
    }
    w.finish().expect("finish");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = strict_error(&p);
    assert!(err.contains("t.jsonl.zst") && err.contains("truncated or corrupt"), "{err}");
    for threads in [1, 2] {
        let (accs, s) = fold_paths(
            std::slice::from_ref(&p),
            ReadOptions { lenient: true, ..ReadOptions::default() },
            threads,
            &|| 0u64,
            &|n: &mut u64, _| *n += 1,
        )
        .expect("lenient keeps what decompressed");
        let n: u64 = accs.iter().sum();
        assert!(n > 0 && n < 20 * ex.len() as u64, "{n}");
        assert!(s.skipped >= 1);
    }
}

#[test]
fn har_missing_response_names_the_entry_and_field() {
    let text = r#"{"log":{"version":"1.2","entries":[
  {"startedDateTime":"2026-11-20T11:15:04.120Z","time":1,"request":{"method":"GET","url":"https://a/x","headers":[]},"response":{"status":200,"content":{}}},
  {"startedDateTime":"2026-11-20T11:15:04.120Z","time":1,
   "request":{"method":"GET","url":"https://a/y","headers":[]}}
]}}"#;
    let (_d, p) = bad("m.har", text.as_bytes());
    let err = strict_error(&p);
    assert!(
        err.contains("m.har:3")
            && err.contains("entry 1")
            && err.contains("missing field `response`"),
        "{err}"
    );
    let (v, s) =
        read_all(&p, ReadOptions { lenient: true, ..ReadOptions::default() }).expect("lenient");
    assert_eq!((v.len(), s.skipped), (1, 1));
}

#[test]
fn har_bad_started_date_time_names_the_field() {
    let text = r#"{"log":{"version":"1.2","entries":[
  {"startedDateTime":"yesterday","time":1,"request":{"method":"GET","url":"https://a/x"},"response":{"status":200}}]}}"#;
    let (_d, p) = bad("d.har", text.as_bytes());
    let err = strict_error(&p);
    assert!(
        err.contains("d.har:2")
            && err.contains("log.entries[0].startedDateTime")
            && err.contains("yesterday"),
        "{err}"
    );
}

#[test]
fn har_that_is_not_har() {
    let (_d, p) = bad("x.har", br#"{"log": {"entries": 5}}"#);
    let err = strict_error(&p);
    assert!(err.contains("x.har:1") && err.contains("log.entries"), "{err}");
}

#[test]
fn proxymock_file_with_no_status_anywhere() {
    let text = "### REQUEST ###\n```\nGET http://localhost:8080/x HTTP/1.1\n```\n\n### RESPONSE ###\n```\nContent-Type: text/plain\n```\n\n### METADATA ###\n```\nts: 2025-08-12T12:18:35Z\n```\n";
    let (_d, p) = bad("2025-08-12_12-18-35.000000Z.md", text.as_bytes());
    let err = strict_error(&p);
    assert!(
        err.contains("2025-08-12_12-18-35.000000Z.md:6") && err.contains("no HTTP status"),
        "{err}"
    );
    let (_d2, pj) = bad("r.json", br#"{"msgType":"rrpair","ts":"2025-03-17T22:19:05Z","http":{"req":{"method":"GET","uri":"/x"},"res":{}}}"#);
    let err = strict_error(&pj);
    assert!(err.contains("r.json:1") && err.contains("http.res.statusCode"), "{err}");
}

#[test]
fn binary_garbage_and_empty_files() {
    let (_d, p) = bad("garbage.bin", &[0x00, 0x9f, 0x92, 0x96, 0xff, 0x00, 0x13]);
    let err = strict_error(&p);
    assert!(err.contains("garbage.bin") && err.contains("binary data"), "{err}");
    let (_d, p) = bad("empty.jsonl", b"");
    assert!(strict_error(&p).contains("empty.jsonl: file is empty"));
    let (_d, p) = bad("blank.jsonl", b"\n\n  \n");
    assert!(strict_error(&p).contains("blank.jsonl"));
}

#[test]
fn directory_of_mixed_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixture("proxymock/markdown/2025-08-12_12-18-35.383552Z.md"),
        dir.path().join("a.md"),
    )
    .expect("copy");
    std::fs::write(dir.path().join("notes.txt"), "remember to rotate the key").expect("write");
    std::fs::write(dir.path().join(".DS_Store"), [0u8, 1, 2]).expect("write");
    // A file that is plainly no capture is listed and passed over, strict or not.
    let (v, s) = read_all(dir.path(), ReadOptions::default()).expect("strict reads the capture");
    assert_eq!(v.len(), 1);
    assert_eq!(s.skipped, 0);
    assert_eq!(s.not_captures.len(), 1);
    assert!(s.not_captures[0].0.ends_with("notes.txt"), "{:?}", s.not_captures);
    assert!(s.not_captures[0].1.contains("remember"), "{:?}", s.not_captures);
    assert_eq!(s.hidden_skipped.len(), 1, "hidden files are listed, not read");
    // A broken capture in the same directory still stops a strict read.
    std::fs::write(
        dir.path().join("b.jsonl"),
        "{\"format\":\"af-snapshot\",\"version\":2}\nnot json\n",
    )
    .expect("write");
    let err = read_all(dir.path(), ReadOptions::default()).expect_err("strict fails").to_string();
    assert!(err.contains("b.jsonl:2"), "{err}");
    // Nothing but non-captures: an error naming the directory and what was there.
    let only = tempfile::tempdir().expect("tempdir");
    std::fs::write(only.path().join("proxymock.log"), "recording outbound traffic on proxy port")
        .expect("write");
    let err = read_all(only.path(), ReadOptions::default()).expect_err("no capture").to_string();
    assert!(err.contains("directory holds no capture") && err.contains("proxymock.log"), "{err}");
}

// ------------------------------------------- real-world captures (../shared/realworld)
// Each test reproduces, in a file of our own, what one file of the public corpus does; its name
// says which file (see SOURCES.md there).

/// A HAR document around `entries` (a list of entry objects as JSON text).
fn har_doc(entries: &str) -> String {
    format!(
        "{{\"log\":{{\"version\":\"1.2\",\"creator\":{{\"name\":\"t\",\"version\":\"1\"}},\"entries\":[{entries}]}}}}"
    )
}

fn har_entry(request_extra: &str, response_extra: &str) -> String {
    format!(
        "{{\"startedDateTime\":\"2026-11-20T11:15:04.120Z\",\"time\":12.5,\
        \"request\":{{\"method\":\"GET\",\"url\":\"https://mitmproxy.org/\",\"httpVersion\":\"HTTP/1.1\",\
        \"headers\":[],\"queryString\":[],\"cookies\":[],\"bodySize\":0{request_extra}}},\
        \"response\":{{\"status\":200,\"statusText\":\"OK\",\"httpVersion\":\"HTTP/1.1\",\"headers\":[],\"cookies\":[],\
        \"content\":{{\"size\":2,\"mimeType\":\"text/plain\",\"text\":\"ok\"}},\"bodySize\":2{response_extra}}},\
        \"cache\":{{}},\"timings\":{{\"send\":1,\"wait\":10,\"receive\":1.5}}}}"
    )
}

#[test]
fn firefox_har_null_headers_size_reads_as_absent_with_a_warning() {
    // Firefox 111 writes `"headersSize": null` on requests; absence is what it means.
    let e = har_entry(",\"headersSize\":null", ",\"headersSize\":-1,\"redirectURL\":\"\"");
    let (_d, p) = bad("firefox.har", har_doc(&[e.clone(), e.clone(), e].join(",")).as_bytes());
    let (v, s) = read_all(&p, ReadOptions::default()).expect("strict reads it");
    assert_eq!(v.len(), 3);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    let w = &s.warnings[0];
    assert_eq!((w.field.as_str(), w.count), ("request.headersSize", 3));
    assert!(
        w.to_string().contains("firefox.har:1: entry 0") && w.to_string().contains("null"),
        "{w}"
    );
}

#[test]
fn charles_har_null_redirect_url_reads_as_absent() {
    let e = har_entry("", ",\"redirectURL\":null");
    let (_d, p) = bad("charles.har", har_doc(&e).as_bytes());
    let (v, s) = read_all(&p, ReadOptions::default()).expect("strict reads it");
    assert_eq!(v[0].status(), Some(200));
    assert_eq!(s.warnings[0].field, "response.redirectURL");
    // A null where HAR requires a value is still an error, and says so.
    let e = har_entry("", "").replace("\"method\":\"GET\"", "\"method\":null");
    let (_d, p) = bad("nullmethod.har", har_doc(&e).as_bytes());
    let err = strict_error(&p);
    assert!(err.contains("request.method") && err.contains("is null"), "{err}");
}

#[test]
fn with_bom_har_reads() {
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend(har_doc(&har_entry("", "")).as_bytes());
    let (_d, p) = bad("with-bom.har", &bytes);
    assert_eq!(read_all(&p, ReadOptions::default()).expect("BOM ignored").0.len(), 1);
}

#[test]
fn brokenfile_har_with_log_as_an_array_says_so() {
    let (_d, p) = bad("brokenfile.har", b"{\"log\":\n[\n    2,1,3\n]\n}");
    let err = strict_error(&p);
    assert!(
        err.contains("brokenfile.har:2: field `log`") && err.contains("`log` is an array"),
        "{err}"
    );
}

#[test]
fn pollyjs_node_fetch_header_value_arrays_are_repeated_headers() {
    let e = har_entry("", "").replace(
        "\"headers\":[],\"queryString\"",
        "\"headers\":[{\"name\":\"accept\",\"value\":[\"*/*\"]},{\"name\":\"x-two\",\"value\":[\"a\",\"b\"]},{\"name\":\"host\",\"value\":\"jsonplaceholder.typicode.com\"}],\"queryString\"",
    );
    let (_d, p) = bad("node-fetch__should-work.har", har_doc(&e).as_bytes());
    let v = read_all(&p, ReadOptions::default()).expect("reads").0;
    let h: Vec<(&str, &str)> =
        v[0].request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        h,
        [
            ("accept", "*/*"),
            ("x-two", "a"),
            ("x-two", "b"),
            ("host", "jsonplaceholder.typicode.com")
        ]
    );
}

#[test]
fn playwright_har_sha1_body_is_read_from_the_file_beside_it() {
    let e =
        har_entry("", "").replace("\"text\":\"ok\"", "\"_file\":\"har-sha1-main-response.txt\"");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("har-sha1.har");
    std::fs::write(&p, har_doc(&e)).expect("write");
    std::fs::write(dir.path().join("har-sha1-main-response.txt"), "Hello, world").expect("write");
    let (v, s) = read_all(&p, ReadOptions::default()).expect("reads");
    let body = v[0].response.as_ref().and_then(|r| r.body.as_ref()).expect("body");
    assert_eq!((body.as_text(), body.truncated), (Some("Hello, world"), false));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // Without the file: the body is missing, and the read says so.
    std::fs::remove_file(dir.path().join("har-sha1-main-response.txt")).expect("rm");
    let (v, s) = read_all(&p, ReadOptions::default()).expect("reads");
    let body = v[0].response.as_ref().and_then(|r| r.body.as_ref()).expect("body");
    assert!(body.truncated && body.bytes().is_empty(), "{body:?}");
    assert_eq!(s.warnings[0].field, "response.content._file");
    assert!(s.warnings[0].message.contains("body missing"), "{:?}", s.warnings);
    // Only a plain name beside the HAR is ever read.
    let e = har_entry("", "").replace("\"text\":\"ok\"", "\"_file\":\"../../etc/passwd\"");
    std::fs::write(&p, har_doc(&e)).expect("write");
    let (_, s) = read_all(&p, ReadOptions::default()).expect("reads");
    assert!(s.warnings[0].message.contains("not a file name beside the HAR"), "{:?}", s.warnings);
}

#[test]
fn safari_har_gzip_body_is_kept_decoded_and_marked_so() {
    let e = har_entry("", "").replace(
        "\"response\":{\"status\":200,\"statusText\":\"OK\",\"httpVersion\":\"HTTP/1.1\",\"headers\":[]",
        "\"response\":{\"status\":200,\"statusText\":\"OK\",\"httpVersion\":\"HTTP/1.1\",\"headers\":[{\"name\":\"Content-Encoding\",\"value\":\"gzip\"}]",
    );
    let (_d, p) = bad("safari.har", har_doc(&e).as_bytes());
    let v = read_all(&p, ReadOptions::default()).expect("reads").0;
    let body = v[0].response.as_ref().and_then(|r| r.body.as_ref()).expect("body");
    assert!(body.decoded && body.as_text() == Some("ok"), "{body:?}");
    // A native snapshot keeps the mark; HAR export writes the decoded text as HAR says.
    let dir = tempfile::tempdir().expect("tempdir");
    let native = dir.path().join("s.jsonl");
    write_native(&v, &native, false);
    let back = read_all(&native, ReadOptions::default()).expect("native").0;
    assert_eq!(back, v);
}

#[test]
fn a_wire_gzip_body_is_exported_to_har_decoded() {
    let gz = coding::encode(&[coding::Coding::Gzip], b"{\"a\":1}").expect("gzip");
    let mut ex = read("har/mitmproxy.har").remove(0);
    let r = ex.response.as_mut().expect("response");
    r.headers = vec![("Content-Encoding".into(), "gzip".into())];
    r.body = Some(Body::from_bytes(gz));
    let dir = tempfile::tempdir().expect("tempdir");
    let har = dir.path().join("x.har");
    write_har(&[ex], &har);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&har).expect("read")).expect("json");
    assert_eq!(doc["log"]["entries"][0]["response"]["content"]["text"], "{\"a\":1}");
    let back = read_all(&har, ReadOptions::default()).expect("reads").0;
    let body = back[0].response.as_ref().and_then(|r| r.body.as_ref()).expect("body");
    assert!(body.decoded && body.as_text() == Some("{\"a\":1}"), "{body:?}");
}

#[test]
fn chrome_har_transport_error_kind_comes_from_its_error_text() {
    let e = har_entry("", "").replace(
        "\"response\":{\"status\":200",
        "\"response\":{\"_error\":\"net::ERR_INTERNET_DISCONNECTED\",\"status\":0",
    );
    let (_d, p) = bad("chrome.har", har_doc(&e).as_bytes());
    let v = read_all(&p, ReadOptions::default()).expect("reads").0;
    assert_eq!(v[0].error.as_ref().map(|e| e.kind), Some(ErrorKind::Unreachable));
}

#[test]
fn speedscale_demo_recording_with_proxymock_log_reads_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = dir.path().join("catfact.ninja");
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::copy(
        fixture("proxymock/markdown/2025-08-12_12-18-35.383552Z.md"),
        host.join("2025-08-12_12-18-35.383552Z.md"),
    )
    .expect("copy");
    std::fs::write(
        dir.path().join("proxymock.log"),
        "2026-06-12 14:12:08 INFO  started user app\nrecording outbound traffic on proxy port 4140\n",
    )
    .expect("write");
    let (v, s) = read_all(dir.path(), ReadOptions::default()).expect("strict read");
    assert_eq!((v.len(), s.skipped), (1, 0));
    assert_eq!(s.not_captures.len(), 1);
    assert!(s.not_captures[0].0.ends_with("proxymock.log"));
}

#[test]
fn ruby_api_subset_postgres_and_amqp_rrpairs_are_counted_not_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("2025-10-09_14-42-45.559715009Z.json"),
        r#"{"msgType":"rrpair","ts":"2025-10-09T14:42:45.559715009Z","l7protocol":"postgres","uuid":"b0j2jZ6mT0mxxpDCeoNJPQ==","tech":"Postgres","network_address":"postgres-service:5432","postgres":{"request":{"ssl":{}},"response":{"ssl":{"willingToEncrypt":false}}}}"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("2025-12-15_21-09-50.885061Z.json"),
        r#"{"msgType":"rrpair","ts":"2025-12-15T21:09:50.885061Z","l7protocol":"amqp091","uuid":"fkLomPS/Rkmpnld2m9uHvw==","AmqpV091":{"client":{}}}"#,
    )
    .expect("write");
    std::fs::copy(
        fixture("proxymock/json/2025-02-11_21-07-54.542084Z.json"),
        dir.path().join("2025-02-11_21-07-54.542084Z.json"),
    )
    .expect("copy");
    let (v, s) = read_all(dir.path(), ReadOptions::default()).expect("strict read");
    assert_eq!((v.len(), s.skipped), (1, 0));
    assert_eq!(s.non_http.get("postgres"), Some(&1));
    assert_eq!(s.non_http.get("amqp091"), Some(&1));
    // A record that says it is HTTP but has no request is still broken.
    std::fs::write(
        dir.path().join("broken.json"),
        r#"{"msgType":"rrpair","ts":"2025-12-15T21:09:50Z","l7protocol":"http","uuid":"AAAA"}"#,
    )
    .expect("write");
    let err = strict_error(dir.path());
    assert!(err.contains("broken.json") && err.contains("http.req"), "{err}");
}

#[test]
fn lenient_with_nothing_usable_is_still_an_error() {
    let (_d, p) = bad(
        "all-bad.jsonl",
        b"{\"format\":\"af-snapshot\",\"version\":1}\nnot json\n{\"also\":\"bad\"}\n",
    );
    let err = read_all(&p, ReadOptions { lenient: true, ..ReadOptions::default() })
        .expect_err("nothing usable")
        .to_string();
    assert!(err.contains("no usable exchange") && err.contains("2 bad record"), "{err}");
}

#[test]
fn invalid_status_and_method_are_rejected_by_validation() {
    let text = "{\"format\":\"af-snapshot\",\"version\":1}\n{\"id\":\"a\",\"request\":{\"method\":\"GE T\",\"url\":\"/x\"},\"timing\":{\"start\":\"2026-11-20T11:15:04Z\"}}\n";
    let (_d, p) = bad("v.jsonl", text.as_bytes());
    let err = strict_error(&p);
    assert!(err.contains("v.jsonl:2") && err.contains("request.method"), "{err}");
}

// ---------------------------------------------------------------- properties

fn arb_headers() -> impl Strategy<Value = Headers> {
    prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,24}"), 0..5)
}

fn arb_body() -> impl Strategy<Value = Option<Body>> {
    prop_oneof![
        Just(None),
        "[ -~\\n]{1,60}".prop_map(|s| Some(Body::text(s))),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(|b| Some(Body::from_bytes(b))),
        (prop::collection::vec(any::<u8>(), 0..10), 100u64..1000).prop_map(|(b, extra)| {
            let mut body = Body::from_bytes(b);
            body.size += extra;
            body.truncated = true;
            Some(body)
        }),
    ]
}

prop_compose! {
    fn arb_exchange()(
        id in "[0-9a-f]{16}",
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
        path in "(/[a-z0-9]{1,8}){1,4}",
        query in prop::option::of("[a-z]{1,5}=[a-z0-9]{1,5}"),
        start in 0i64..4_000_000_000_000_000_000,
        duration in prop::option::of(0u64..10_000_000_000),
        ttfb_frac in 0u64..=100,
        outcome in 0u8..3,
        status in 100u16..600,
        req_headers in arb_headers(),
        res_headers in arb_headers(),
        req_body in arb_body(),
        res_body in arb_body(),
        caller in prop::option::of("[a-z]{1,6}"),
        conn in prop::option::of("[a-z0-9]{1,6}"),
        tag in prop::option::of(("[a-z]{1,6}", "[a-z ]{0,6}")),
    ) -> Exchange {
        let url = format!("https://api.test{path}{}", query.map(|q| format!("?{q}")).unwrap_or_default());
        Exchange {
            id: ExchangeId::new(id),
            service: None,
            direction: Direction::Outbound,
            conn_id: conn,
            caller,
            request: Request { method: method.into(), url, http_version: Some("HTTP/1.1".into()), headers: req_headers, body: req_body },
            response: (outcome == 0).then(|| Response { status, status_text: Some("S".into()), http_version: None, headers: res_headers, body: res_body }),
            error: (outcome == 1).then(|| TransportError { kind: ErrorKind::Timeout, message: "t".into() }),
            timing: Timing { start: Timestamp::from_nanos(start), duration_ns: duration, ttfb_ns: duration.map(|d| d / 100 * ttfb_frac), phases: None },
            tags: tag.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
        }
    }
}

/// 64 cases in CI; `AF_PROPTEST_CASES=20000` for a long robustness run (docs/benchmarks.md).
fn cases() -> u32 {
    std::env::var("AF_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_exchange_round_trips_through_native_and_har(exchanges in prop::collection::vec(arb_exchange(), 1..8)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let native = dir.path().join("p.jsonl");
        write_native(&exchanges, &native, false);
        prop_assert_eq!(&read_all(&native, ReadOptions::default()).expect("native").0, &exchanges);
        let har = dir.path().join("p.har");
        write_har(&exchanges, &har);
        prop_assert_eq!(&read_all(&har, ReadOptions::default()).expect("har").0, &exchanges);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(prefix in prop::sample::select(vec![
            "{\"format\":\"af-snapshot\",\"version\":1}\n", "{\"log\":{\"entries\":[", "{\"msgType\":\"rrpair\",\"http\":", "### REQUEST ###\n", ""]),
        tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fuzz.in");
        let mut f = std::fs::File::create(&p).expect("create");
        f.write_all(prefix.as_bytes()).expect("write");
        f.write_all(&tail).expect("write");
        drop(f);
        let _ = read_all(&p, ReadOptions::default());
        let _ = read_all(&p, ReadOptions { lenient: true, ..ReadOptions::default() });
    }
}

// ---------------------------------------------------------------- eliding bodies

#[test]
fn eliding_reads_keep_everything_but_body_bytes_in_every_format() {
    let elide = ReadOptions { bodies: Bodies::Elide, ..ReadOptions::default() };
    for rel in [
        "formats/native-v1.jsonl",
        "har/browser.har",
        "proxymock/jsonl/openai.jsonl",
        "proxymock/markdown",
    ] {
        let mut kept = read(rel);
        for threads in [1, 2] {
            let (accs, _) = fold_paths(
                &[fixture(rel)],
                elide,
                threads,
                &Vec::new,
                &|v: &mut Vec<Exchange>, e| v.push(e),
            )
            .expect(rel);
            let mut elided: Vec<Exchange> = accs.into_iter().flatten().collect();
            elided.sort_by(|a, b| a.id.cmp(&b.id));
            kept.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(elided.len(), kept.len());
            for (e, k) in elided.iter().zip(&kept) {
                let mut k = k.clone();
                k.elide_bodies();
                assert_eq!(e, &k, "{rel}");
            }
        }
    }
}

#[test]
fn an_elided_body_is_never_written() {
    let elide = ReadOptions { bodies: Bodies::Elide, ..ReadOptions::default() };
    let ex = read_all(&fixture("formats/native-v1.jsonl"), elide).expect("reads").0;
    assert!(ex[0].has_elided_body());
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, format) in
        [("a.jsonl", OutputFormat::Native { zstd: false }), ("a.har", OutputFormat::Har)]
    {
        let mut w = Writer::create(&dir.path().join(name), format, false).expect("create");
        let err = w.write(&ex[0]).expect_err("refused").to_string();
        assert!(err.contains("not loaded"), "{name}: {err}");
    }
}

// ---------------------------------------------------------------- mutation fuzzing

/// Every committed fixture file, as bytes, with a name whose extension does not reveal the format.
fn fixture_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![fixture("")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let p = entry.expect("entry").path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if p.is_dir() {
                // The captures, not the scenarios' programs and their packages.
                if !matches!(name.as_str(), "service" | "common" | "paths" | "gen" | "programs")
                    && !name.starts_with('.')
                    && name != "node_modules"
                {
                    stack.push(p);
                }
            } else if ["har", "jsonl", "json", "md", "zst"]
                .iter()
                .any(|e| p.extension().is_some_and(|x| x == *e))
            {
                out.push((p.display().to_string(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Valid files with a few bytes changed and maybe cut short: every reader, strict or lenient,
    /// sequential or parallel, must answer with exchanges or an error naming the file — never a
    /// panic. Compressed with zstd too, so the decompressing path is covered.
    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
        compress in any::<bool>(),
    ) {
        let files = fixture_files();
        let (_, original) = &files[which.index(files.len())];
        let mut bytes = original.clone();
        for (at, b) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        if compress {
            bytes = zstd::encode_all(&bytes[..], 1).expect("compress");
            if let Some(c) = cut {
                bytes.truncate(c.index(bytes.len() + 1).max(4));
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("mutant.in");
        std::fs::write(&p, &bytes).expect("write");
        for lenient in [false, true] {
            for bodies in [Bodies::Keep, Bodies::Elide] {
                let opts = ReadOptions { lenient, bodies };
                for threads in [1, 2] {
                    match fold_paths(std::slice::from_ref(&p), opts, threads, &|| 0u64, &|n: &mut u64, _| *n += 1) {
                        Ok(_) => {}
                        Err(e) => prop_assert!(e.to_string().contains("mutant.in"), "{e}"),
                    }
                }
            }
        }
    }
}

#[test]
fn body_digests_agree_between_kept_and_elided_reads() {
    let elide = ReadOptions { bodies: Bodies::Elide, ..ReadOptions::default() };
    for rel in ["formats/native-v1.jsonl", "har/browser.har", "proxymock/jsonl/openai.jsonl"] {
        let kept = read(rel);
        let elided = read_all(&fixture(rel), elide).expect(rel).0;
        for (k, e) in kept.iter().zip(&elided) {
            let d = |x: &Exchange| x.request.body.as_ref().map(Body::digest);
            assert_eq!(d(k), d(e), "{rel} {}", k.id);
        }
    }
    assert_ne!(Body::text("a").digest(), Body::text("b").digest());
    assert_ne!(Body::text("a").digest(), Body::from_bytes(vec![0xff]).digest());
}

#[test]
fn proxymock_markdown_written_by_af_reads_back() {
    use af_snapshot::formats::proxymock::{markdown_file_name, write_markdown};
    let dir = tempfile::tempdir().expect("tempdir");
    let original = read("har/browser.har");
    for ex in &original {
        std::fs::write(dir.path().join(markdown_file_name(ex)), write_markdown(ex)).expect("write");
    }
    // The transport-error exchange has no status: the reader must refuse it, by name.
    let (back, summary) =
        read_all(dir.path(), ReadOptions { lenient: true, ..ReadOptions::default() })
            .expect("reads");
    assert_eq!(summary.skipped, 1, "the exchange without a response has no status to write");
    assert_eq!(back.len(), 2);
    for b in &back {
        let o = original.iter().find(|o| o.id == b.id).expect("same ids");
        assert_eq!(
            (&b.request.method, &b.request.url, b.status()),
            (&o.request.method, &o.request.url, o.status())
        );
        assert_eq!(b.timing.start, o.timing.start);
        assert_eq!(b.timing.duration_ns, o.timing.duration_ns);
    }
}
