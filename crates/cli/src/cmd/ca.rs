//! `af ca`: the local CA that the mock's HTTPS and proxy modes (and the recorder) present.

use crate::args::CaArgs;
use crate::exit;
use std::io::Write;

pub fn run(a: &CaArgs) -> anyhow::Result<i32> {
    let ca = super::common::load_ca(a.dir.as_deref())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "# af local CA: {}", ca.cert_path().display())?;
    writeln!(out, "# trust it (OpenSSL tools, curl, Python requests, Node):")?;
    for (k, v) in ca.client_env() {
        writeln!(out, "export {k}={v}")?;
    }
    writeln!(out, "# then route a program through `af mock --proxy --port PORT`:")?;
    writeln!(
        out,
        "# export HTTPS_PROXY=http://127.0.0.1:PORT HTTP_PROXY=http://127.0.0.1:PORT NO_PROXY="
    )?;
    Ok(exit::OK)
}
