//! The `weave` binary: arguments → `cli::run` → exit code.

// A build allocates and frees millions of small strings (object fields, paths) on several threads;
// mimalloc does that with less contention and less time than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weave::cli::run()
}
