//! Load generator for `bench/serve.sh`: sustained OTLP/HTTP trace exports (HTTP client spans,
//! protobuf) at an `af serve`, reporting acknowledged spans per second every interval.
//!
//! usage: otlp_load URL SECONDS [CONNECTIONS] [SPANS_PER_REQUEST] [SERVICES] [RATE]
//!
//! RATE: spans per second offered in all (0, the default: as fast as acknowledged).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
}

fn request(service: usize, n: usize, seq: &mut u64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let spans = (0..n)
        .map(|i| {
            *seq += 1;
            let s = *seq;
            let start = now - (s % 1000) * 1_000;
            let status = if s.is_multiple_of(50) { 429 } else { 200 };
            Span {
                trace_id: s.to_le_bytes().repeat(2),
                span_id: s.to_le_bytes().to_vec(),
                name: "GET".into(),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 5_000_000 + (s % 7) * 1_000_000,
                attributes: vec![
                    kv("http.request.method", any_value::Value::StringValue("GET".into())),
                    kv(
                        "url.full",
                        any_value::Value::StringValue(format!(
                            "http://api{}.test/v1/items/{}?page={}",
                            service,
                            s % 5000,
                            i % 3
                        )),
                    ),
                    kv("http.response.status_code", any_value::Value::IntValue(status)),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue(format!("svc{service}")),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = format!(
        "{}/v1/traces",
        args.get(1).map_or("http://127.0.0.1:4318", String::as_str).trim_end_matches('/')
    );
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let conns: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let per: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let services: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(4);
    let rate: f64 = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    // Each connection sends one request every `gap` (open loop: a slow answer does not lower
    // the offered rate, it is a request late).
    let gap = (rate > 0.0).then(|| Duration::from_secs_f64(per as f64 * conns as f64 / rate));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (client, url, acked, refused) =
            (client.clone(), url.clone(), acked.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = (c as u64) << 40;
            let mut k = 0;
            let mut next = Instant::now();
            while Instant::now() < end {
                if let Some(g) = gap {
                    next += g;
                    tokio::time::sleep_until(next.into()).await;
                }
                let body = request((c + k) % services, per, &mut seq);
                k += 1;
                let req = http::Request::post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        if status.is_success() {
                            acked.fetch_add(per as u64, Ordering::Relaxed);
                        } else {
                            refused.fetch_add(per as u64, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    let mut last = 0;
    let interval = Duration::from_secs(10.min(secs.max(1)));
    while Instant::now() < end {
        tokio::time::sleep(interval).await;
        let a = acked.load(Ordering::Relaxed);
        println!(
            "t={:>4.0}s acked/s={:>8.0} refused={}",
            t0.elapsed().as_secs_f64(),
            (a - last) as f64 / interval.as_secs_f64(),
            refused.load(Ordering::Relaxed)
        );
        last = a;
    }
    for t in tasks {
        let _ = t.await;
    }
    let a = acked.load(Ordering::Relaxed);
    println!(
        "total acked={a} refused={} mean acked/s={:.0}",
        refused.load(Ordering::Relaxed),
        a as f64 / t0.elapsed().as_secs_f64()
    );
}
