#!/usr/bin/env bash
# Stops `weave build` at every file-system call it makes, one run per call, and checks the promise of
# README's "Writes": after the next weave command, OUT is byte for byte the previous build or the new
# one, never missing and never a mix, and after the next build no `.weave-*` entry of weave's is left.
#
#   bash scripts/kill-test.sh [WEAVE]        WEAVE: the binary (default target/debug/weave, built here)
#   WEAVE_KILL_STEP=5 bash ...               only every 5th call (a quicker, coarser run)
#
# Each call is stopped twice, under strace: once by SIGKILL as the call starts (a process killed
# there), once by making the call fail with EIO (a disk or file system refusing). A failed rename,
# unlink or rmdir must make the build fail (exit 2), never pass silently. Three builds are cut:
# a new OUT, an update that adds files (fixtures/review/add-agent before → after), and one that
# removes them (after → before). Needs strace (Debian package `strace`). Exit 1 on any broken promise.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v strace >/dev/null; then
  echo "error: strace is not installed (apt-get install strace)" >&2
  exit 2
fi
if [[ $# -ge 1 ]]; then
  weave="$(realpath "$1")"
else
  cargo build --locked --quiet
  weave="$(realpath "${CARGO_TARGET_DIR:-target}/debug/weave")"
fi
step="${WEAVE_KILL_STEP:-1}"
before="$PWD/fixtures/review/add-agent/before.yaml"
after="$PWD/fixtures/review/add-agent/after.yaml"
calls=openat,write,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,utimensat
work="$(mktemp -d "${TMPDIR:-/tmp}/weave-kill.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Reference builds. Each topology is copied to the same name, so that the locks (which record the
# input's file name) of every build agree.
mkdir -p "$work/inputs/before" "$work/inputs/after"
cp "$before" "$work/inputs/before/multi-cloud-values.yaml"
cp "$after" "$work/inputs/after/multi-cloud-values.yaml"
before="$work/inputs/before/multi-cloud-values.yaml"
after="$work/inputs/after/multi-cloud-values.yaml"
"$weave" build "$before" -o "$work/ref-before" 2>/dev/null
"$weave" build "$after" -o "$work/ref-after" 2>/dev/null

failures=0
runs=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

same_tree() {
  diff -r --no-dereference "$1" "$2" >/dev/null 2>&1
}

# One scenario: OUT starts as $1 (a reference tree, or "none"), the build is of $2, stopped at the Nth
# call $3 in the way $4 (kill or eio).
run_one() {
  local start="$1" topology="$2" call="$3" n="$4" how="$5" expected_new="$6"
  local case_dir="$work/case" out="$work/case/out" log="$work/strace.log"
  rm -rf "$case_dir"
  mkdir -p "$case_dir"
  if [[ "$start" != none ]]; then
    cp -a "$start" "$out"
  fi
  local inject
  if [[ "$how" == kill ]]; then inject="signal=KILL"; else inject="error=EIO"; fi
  local code=0
  # In a subshell that waits for strace (which dies of the tracee's signal) and exits normally, so
  # that the shell prints no "Killed" notice.
  (
    strace -f -qq -o "$log" -e trace="$call" -e inject="$call:$inject:when=$n" \
      "$weave" build "$topology" -o "$out" >/dev/null 2>&1
    exit $?
  ) 2>/dev/null || code=$?
  runs=$((runs + 1))
  local injected=0
  grep -q "INJECTED" "$log" && injected=1
  local label="$how at $call #$n (start: ${start##*/}, build: ${expected_new##*/})"
  if [[ "$how" == eio && $injected == 1 && $code == 0 ]]; then
    case "$call" in
      rename | renameat | renameat2 | unlink | unlinkat | rmdir)
        fail "$label: the build failed a $call and exited 0"
        ;;
    esac
  fi
  # The next weave command that opens OUT finishes or discards what the stopped build left.
  "$weave" build --check "$topology" -o "$out" >/dev/null 2>&1 || true
  if [[ "$start" == none ]]; then
    if [[ -e "$out" ]] && ! same_tree "$out" "$expected_new"; then
      fail "$label: OUT is neither absent nor the new build"
    fi
  elif [[ ! -d "$out" ]]; then
    fail "$label: OUT is missing"
  elif ! same_tree "$out" "$start" && ! same_tree "$out" "$expected_new"; then
    fail "$label: OUT is neither the old build nor the new one"
    diff -r --no-dereference "$out" "$expected_new" | head -5 >&2 || true
  fi
  # The next build leaves exactly the new build and nothing of weave's beside or inside it.
  if ! "$weave" build "$topology" -o "$out" >/dev/null 2>"$work/build.err"; then
    fail "$label: the next build failed: $(head -c 300 "$work/build.err")"
  elif ! same_tree "$out" "$expected_new"; then
    fail "$label: the next build is not the new build"
  fi
  local leftovers
  leftovers="$(find "$case_dir" -name '.weave-*' | head -3)"
  if [[ -n "$leftovers" ]]; then
    fail "$label: left behind after the next build: $leftovers"
  fi
}

count_calls() {
  local start="$1" topology="$2" call="$3"
  local case_dir="$work/case" out="$work/case/out" log="$work/strace.log"
  rm -rf "$case_dir"
  mkdir -p "$case_dir"
  if [[ "$start" != none ]]; then
    cp -a "$start" "$out"
  fi
  strace -f -qq -o "$log" -e trace="$call" "$weave" build "$topology" -o "$out" >/dev/null 2>&1
  grep -c "" "$log" || true
}

for scenario in "none $after $work/ref-after" "$work/ref-before $after $work/ref-after" \
  "$work/ref-after $before $work/ref-before"; do
  read -r start topology expected_new <<<"$scenario"
  IFS=, read -r -a call_list <<<"$calls"
  for call in "${call_list[@]}"; do
    total="$(count_calls "$start" "$topology" "$call")"
    for ((n = 1; n <= total; n += step)); do
      run_one "$start" "$topology" "$call" "$n" kill "$expected_new"
      run_one "$start" "$topology" "$call" "$n" eio "$expected_new"
    done
  done
  echo "scenario ${start##*/} → ${expected_new##*/}: done ($runs runs so far, $failures failures)" >&2
done

echo "$runs runs, $failures failures"
if [[ $failures -gt 0 ]]; then
  exit 1
fi
