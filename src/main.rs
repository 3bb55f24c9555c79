//! The `discoveryd` command: the library's command line with the built-in
//! responder types. A plugin author's own binary looks the same, with a
//! registration in the closure (see `examples/custom-responder`).

fn main() -> std::process::ExitCode {
    discoveryd::cli::main_with(|_| Ok(()))
}
