//! The `af` binary: parse arguments, run one verb, map the outcome to a documented exit code.

mod args;
mod cmd;
mod exit;
mod output;
mod render;

fn main() {
    std::process::exit(exit::run(args::parse()));
}
