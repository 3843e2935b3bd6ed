//! `af ca`: the local CA that the mock's HTTPS and proxy modes (and the recorder) present.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use af_ca::Ca;

use crate::args::CaArgs;
use crate::exit;

/// Loads (or creates) the CA in `dir`, saying so on stderr when it is new.
pub(super) fn load(dir: Option<&Path>) -> anyhow::Result<Arc<Ca>> {
    let dir = dir.map_or_else(af_ca::default_dir, Path::to_owned);
    let (ca, created) = Ca::load_or_create(&dir)?;
    if created {
        eprintln!(
            "af: created a local CA in {} (key {} is mode 0600)",
            dir.display(),
            ca.key_path().display()
        );
    }
    Ok(Arc::new(ca))
}

pub fn run(a: &CaArgs) -> anyhow::Result<i32> {
    let ca = load(a.dir.as_deref())?;
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
