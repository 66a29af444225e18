//! The `weave` binary: arguments → `cli::run` → exit code.

// A build allocates and frees millions of small strings (object fields, paths) on several threads;
// mimalloc does that with less contention and less time than the system allocator. Built with
// `no_thp`, it does not ask the kernel for transparent huge pages: a build touches its few hundred
// MB once, and with huge pages each first touch zeroes (and on a fragmented host, compacts) 2 MiB
// at a time, which at 50,000 agents cost a quarter of a second of a one-agent rebuild.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weave::cli::run()
}
