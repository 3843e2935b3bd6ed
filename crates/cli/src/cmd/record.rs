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
        Ok::<_, anyhow::Error>(code)
    })?;
    let written = rec.finish()?.unwrap_or(0);
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
