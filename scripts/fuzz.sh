#!/usr/bin/env bash
# `make fuzz` (and part fuzz of `make prove`): runs each cargo-fuzz target of tests/fuzz (or those
# named in FUZZ_TARGETS) for FUZZ_SECONDS (default 60) and prints
# `fuzz <target>: <runs> runs in <s> s, <n> crashes`. A crash
# (a panic or a broken property, see domain/tests/fuzz_checks/mod.rs) is copied into
# tests/fuzz/regressions/<target>/, where `make test` replays it from then on; the script then
# fails. cargo-fuzz is pinned; libFuzzer's flags need a nightly compiler, so the stable one is
# told to accept them (RUSTC_BOOTSTRAP=1). Builds with debug assertions, so an overflow panics.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-60}
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
dir=tests/fuzz
status=0
for target in ${FUZZ_TARGETS:-receipt_code personal upcast}; do
  corpus=target/fuzz-corpus/$target
  mkdir -p "$corpus" "$dir/artifacts/$target"
  log=$(mktemp)
  start=$(date +%s)
  # Seeds (tests/fuzz/seeds/<target>/, e.g. one stored payload per event type) start the search
  # from inputs that reach deep; libFuzzer reads them and writes what it finds to $corpus only.
  seeds=()
  [ -d "$dir/seeds/$target" ] && seeds=("$dir/seeds/$target")
  if cargo fuzz run --fuzz-dir "$dir" --sanitizer none --debug-assertions "$target" "$corpus" "${seeds[@]}" -- \
       -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=$(find "$dir/artifacts/$target" -type f | wc -l)
    [ "$crashes" -gt 0 ] || { tail -30 "$log"; echo "fuzz $target: the fuzzer failed without a crash" >&2; exit 1; }
    cp "$dir/artifacts/$target"/* "$dir/regressions/$target/"
    tail -30 "$log"
    status=1
  fi
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
  echo "fuzz $target: ${runs:-?} runs in $(( $(date +%s) - start )) s, $crashes crashes"
  rm -f "$log"
done
[ $status -eq 0 ] || echo "fuzz: crashes were copied into $dir/regressions/; make test replays them" >&2
exit $status
