//! `discoveryd-hello`: the whole discoveryd command line (run, check,
//! start, stop, status, ...) with the `hello` responder type added.

fn main() -> std::process::ExitCode {
    discoveryd::cli::main_with(discoveryd_hello::register)
}
