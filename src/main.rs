//! The `weave` binary: arguments → `cli::run` → exit code.

fn main() -> std::process::ExitCode {
    weave::cli::run()
}
