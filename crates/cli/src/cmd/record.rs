//! `af record`: the recording proxy, as a service or around a program.

use std::net::SocketAddr;

use af_capture::{Recorder, RecorderConfig, Route};
use af_snapshot::{BackgroundWriter, OutputFormat};

use crate::args::RecordArgs;
use crate::exit::{self, UsageError};

fn parse_route(s: &str) -> Result<(SocketAddr, http::Uri), UsageError> {
    let (listen, upstream) = s.split_once('=').ok_or_else(|| {
        UsageError(format!(
            "--reverse {s:?}: expected LISTEN=UPSTREAM, e.g. 127.0.0.1:4143=http://127.0.0.1:8080"
        ))
    })?;
    let addr = listen.parse().map_err(|_| {
        UsageError(format!("--reverse {s:?}: {listen:?} is not an address like 127.0.0.1:4143"))
    })?;
    let uri: http::Uri = upstream
        .parse()
        .map_err(|_| UsageError(format!("--reverse {s:?}: {upstream:?} is not a URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(UsageError(format!(
            "--reverse {s:?}: the upstream must be http://host:port or https://host"
        )));
    }
    Ok((addr, uri))
}

pub fn run(a: &RecordArgs) -> anyhow::Result<i32> {
    let routes = a.reverse.iter().map(|r| parse_route(r)).collect::<Result<Vec<_>, _>>()?;
    let forward = routes.is_empty() || a.forward || !a.command.is_empty();
    let forward_addr: SocketAddr = if a.command.is_empty() {
        a.listen.parse().map_err(|_| {
            UsageError(format!("--listen {:?}: not an address like 127.0.0.1:4140", a.listen))
        })?
    } else {
        SocketAddr::from(([127, 0, 0, 1], 0))
    };
    match OutputFormat::for_path(&a.output)? {
        OutputFormat::Native { zstd: false } => {}
        _ => {
            return Err(UsageError(format!(
                "{}: af record writes .jsonl (line-flushed; convert afterwards)",
                a.output.display()
            ))
            .into());
        }
    }
    if a.output.exists() && !a.force {
        return Err(UsageError(format!(
            "{}: already exists (use --force to overwrite)",
            a.output.display()
        ))
        .into());
    }
    let cfg = RecorderConfig {
        max_body: a.max_body,
        redact: a.redact_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
        keep_secrets: a.keep_secrets,
        insecure_upstream: a.insecure_upstream,
        caller: a.caller_key.clone(),
    };
    let ca = if forward { Some(super::common::load_ca(a.ca_dir.as_deref())?) } else { None };
    let writer = BackgroundWriter::create(&a.output)?;
    let rec = Recorder::new(cfg, writer, ca.as_ref()).map_err(UsageError)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let code = rt.block_on(async {
        let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut servers = Vec::new();
        let mut proxy_url = None;
        let mut listen =
            |addr: SocketAddr, route: Route, what: String| -> anyhow::Result<SocketAddr> {
                let listener = af_mock::bind(addr)
                    .map_err(|e| UsageError(format!("cannot listen on {addr}: {e}")))?;
                let bound = listener.local_addr()?;
                eprintln!("af record: {what} on {bound}");
                let mut stop = stop_tx.subscribe();
                servers.push(tokio::spawn(af_capture::serve(
                    listener,
                    rec.clone(),
                    route,
                    async move {
                        let _ = stop.recv().await;
                    },
                )));
                Ok(bound)
            };
        for (addr, upstream) in &routes {
            listen(
                *addr,
                Route::Reverse(upstream.clone()),
                format!("reverse proxy to {upstream}"),
            )?;
        }
        if forward {
            let bound = listen(
                forward_addr,
                Route::Forward,
                "forward proxy (HTTP_PROXY/HTTPS_PROXY, CONNECT intercepted)".into(),
            )?;
            proxy_url = Some(format!("http://{bound}"));
        }
        let (push_stop, push_task) = match &a.push {
            Some(url) => {
                let (tx, rx) = tokio::sync::watch::channel(false);
                let task =
                    tokio::spawn(push(url.clone(), a.push_service.clone(), a.output.clone(), rx));
                (Some(tx), Some(task))
            }
            None => (None, None),
        };
        let code = if a.command.is_empty() {
            eprintln!("af record: writing {}; Ctrl-C stops", a.output.display());
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            exit::OK
        } else {
            let mut cmd = tokio::process::Command::new(&a.command[0]);
            cmd.args(&a.command[1..]);
            if let Some(url) = &proxy_url {
                for k in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
                    cmd.env(k, url);
                }
                cmd.env("NO_PROXY", "").env("no_proxy", "");
            }
            if let Some(ca) = &ca {
                for (k, v) in ca.client_env() {
                    cmd.env(k, v);
                }
            }
            let status = cmd
                .status()
                .await
                .map_err(|e| UsageError(format!("cannot start {:?}: {e}", a.command[0])))?;
            status.code().unwrap_or(exit::INTERNAL)
        };
        let _ = stop_tx.send(());
        for s in servers {
            let _ = s.await;
        }
        // The file complete before the last push: every recorded exchange reaches af serve.
        let written = rec.finish()?;
        if let (Some(stop), Some(task)) = (push_stop, push_task) {
            let _ = stop.send(true);
            match task.await {
                Ok(Ok(n)) => eprintln!(
                    "af record: {n} exchanges pushed to {}",
                    a.push.as_deref().unwrap_or("")
                ),
                Ok(Err(e)) => {
                    eprintln!(
                        "af record: pushing to {} failed: {e:#}",
                        a.push.as_deref().unwrap_or("")
                    );
                    return Ok((exit::CHECK_FAILED.max(code), written));
                }
                Err(e) => eprintln!("af record: the push task failed: {e}"),
            }
        }
        Ok::<_, anyhow::Error>((code, written))
    })?;
    let (code, written) = code;
    let written = written.unwrap_or(0);
    eprintln!("af record: {written} exchanges recorded to {}", a.output.display());
    if written > 0 {
        // The same table `af inspect` prints, read in this process.
        let analysis = crate::args::AnalysisArgs {
            templates: Vec::new(),
            templates_from: Vec::new(),
            caller_key: af_snapshot::CallerSpec::Auto,
            threads: None,
            read: crate::args::ReadArgs { lenient: false },
        };
        let cfg = super::common::config(
            &analysis,
            crate::args::By::Endpoint,
            af_analyze::Filter::default(),
        )?;
        let loaded = super::common::load(std::slice::from_ref(&a.output), &cfg, &analysis, false)?;
        eprint!("{}", crate::render::inspect(&loaded.table, &loaded.summary, false, false));
    }
    Ok(code)
}

/// Streams the snapshot being written into a running `af serve`: every 200 ms, the lines
/// completed since the last look go to `URL/v1/exchanges` (the recorder's writer flushes when
/// idle, so complete lines are whole exchanges). A refusal with 429 is retried after its
/// `Retry-After`; anything else non-2xx stops the push with the server's message.
async fn push(
    url: String,
    service: String,
    path: std::path::PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let tls = af_capture::client_tls(false).map_err(anyhow::Error::msg)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let target = format!(
        "{}/v1/exchanges?service={}",
        url.trim_end_matches('/'),
        service
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let token = std::env::var("AF_SERVE_TOKEN").ok().filter(|t| !t.is_empty());
    let mut offset = 0usize;
    let mut pushed = 0u64;
    loop {
        let last = *stop.borrow();
        let bytes = tokio::fs::read(&path).await.unwrap_or_default();
        let end = bytes[offset.min(bytes.len())..]
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| offset + i + 1);
        if let Some(end) = end {
            let chunk = bytes::Bytes::copy_from_slice(&bytes[offset..end]);
            loop {
                let mut req =
                    http::Request::post(&target).header("content-type", "application/x-ndjson");
                if let Some(t) = &token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                let resp = client.request(req.body(Full::new(chunk.clone()))?).await?;
                let status = resp.status();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let body = resp.into_body().collect().await?.to_bytes();
                if status.is_success() {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    pushed += v.get("accepted").and_then(serde_json::Value::as_u64).unwrap_or(0);
                    if let Some(r) =
                        v.get("rejected").and_then(|r| r.as_array()).filter(|r| !r.is_empty())
                    {
                        eprintln!("af record: af serve refused {} exchange(s): {}", r.len(), r[0]);
                    }
                    break;
                }
                if status == http::StatusCode::TOO_MANY_REQUESTS {
                    tokio::time::sleep(std::time::Duration::from_secs(retry.unwrap_or(1))).await;
                    continue;
                }
                anyhow::bail!(
                    "{target} answered {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                );
            }
            offset = end;
        }
        if last {
            return Ok(pushed);
        }
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), stop.changed()).await;
    }
}
