//! The `af` binary: `main` parses the arguments, `cmd::dispatch` runs one verb, `exit::report`
//! maps an error to its documented exit code.

mod args;
mod cmd;
mod exit;
mod output;
mod render;

/// mimalloc instead of the system allocator: per-request allocations on the proxy and mock
/// paths are freed on another thread (the snapshot writer), which glibc's arenas handle poorly
/// (docs/benchmarks.md, `af record` section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = args::parse();
    let code = match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    };
    std::process::exit(code);
}
