//! The `huiyin` binary: see `api::cli`.

/// mimalloc instead of glibc's malloc: under registration load `perf` put about a fifth of the
/// service's own CPU in `malloc`/`free` (BENCHMARKS.md, profile of 2026-12-02). Built without
/// transparent huge pages (`no_thp`, see the workspace's Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    api::cli::main()
}
