//! The `af` binary: parse arguments, run one verb, map the outcome to a documented exit code.

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
    std::process::exit(exit::run(args::parse()));
}
