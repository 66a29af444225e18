#!/usr/bin/env bash
# Whole-process benchmark of weave, rebuilds into an existing OUT, the time of each phase, and weave
# against Jsonnet (go-jsonnet and jrsonnet), KCL and Jinja2 on the same Kubernetes manifests. Prints
# a markdown report on stdout (bench/README.md explains it); progress goes to stderr. 10 to 15 minutes
# on 2 cores.
#
#   bash bench/run.sh                         everything
#   bash bench/run.sh --sizes 100,1000        other topology sizes (default 100,1000,10000,50000)
#   bash bench/run.sh --peers jsonnet,kcl     other peers (default jsonnet,jrsonnet,kcl,jinja2)
#   bash bench/run.sh --no-peers              without the peer comparison
#   bash bench/run.sh --no-phases             without the per-phase table
#   bash bench/run.sh --timeout 600           seconds before one run is stopped (default 300)
#
# Environment: WEAVE_BENCH_GENERATOR (default ../shared/bench/gen-topology.py), WEAVE_BENCH_TMPFS
# (where builds write; default /dev/shm), WEAVE_BENCH_DISK (where the disk-write note's builds write;
# default target/weave-bench; the rebuild table's builds write there too). Generated topologies are
# kept in target/weave-bench/; the peers are installed with pip into bench/.venv, and jrsonnet with
# `cargo install --locked` into bench/.jrsonnet (WEAVE_BENCH_JRSONNET names another binary).
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bash bench/run.sh [--sizes N,N,...] [--peers NAME,...] [--no-peers] [--no-phases] [--timeout SECONDS]"
peers=jsonnet,jrsonnet,kcl,jinja2
passthrough=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sizes | --timeout)
      [[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
      passthrough+=("$1" "$2")
      shift
      ;;
    --peers)
      [[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
      peers="$2"
      shift
      ;;
    --no-peers) peers= ;;
    --no-phases) passthrough+=(--no-phases) ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done

generator="${WEAVE_BENCH_GENERATOR:-../shared/bench/gen-topology.py}"
if [[ ! -f "$generator" ]]; then
  echo "error: no topology generator at $generator; set WEAVE_BENCH_GENERATOR" >&2
  exit 2
fi

echo "building weave (release)" >&2
cargo build --release --locked --quiet

if [[ -n "${WEAVE_BENCH_TMPFS:-}" ]]; then
  tmpfs_parent="$WEAVE_BENCH_TMPFS"
elif [[ -d /dev/shm && -w /dev/shm ]]; then
  tmpfs_parent=/dev/shm
else
  tmpfs_parent="${TMPDIR:-/tmp}"
  echo "warning: no /dev/shm; builds write to $tmpfs_parent" >&2
fi
mkdir -p target/weave-bench
tmpfs_dir="$(mktemp -d "$tmpfs_parent/weave-bench.XXXXXX")"
disk_dir="$(mktemp -d "${WEAVE_BENCH_DISK:-$PWD/target/weave-bench}/out.XXXXXX")"
trap 'rm -rf "$tmpfs_dir" "$disk_dir"' EXIT

peer_arguments=()
if [[ -n "$peers" ]]; then
  venv=bench/.venv
  python="$venv/bin/python"
  if [[ ! -x "$python" ]] && ! python3 -m venv "$venv" >&2; then
    echo "warning: cannot create $venv: the peers are not measured" >&2
    peers=
  fi
fi
if [[ -n "$peers" ]]; then
  # Each peer's package alone, so that one that cannot be installed leaves the others measured (and
  # the report says so). PyYAML reads the outputs for the object comparison and the topology for
  # Jinja2.
  pip_install() {
    "$python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  }
  "$python" -c 'import yaml' 2>/dev/null || pip_install 'PyYAML>=6.0.3,<7' ||
    echo "warning: pip could not install PyYAML: the object comparison fails" >&2
  IFS=, read -r -a peer_list <<<"$peers"
  for peer in "${peer_list[@]}"; do
    if [[ "$peer" == jrsonnet ]]; then
      jrsonnet="${WEAVE_BENCH_JRSONNET:-bench/.jrsonnet/bin/jrsonnet}"
      if [[ ! -x "$jrsonnet" ]]; then
        echo "installing jrsonnet into bench/.jrsonnet (cargo install, a few minutes)" >&2
        cargo install --quiet --locked --root bench/.jrsonnet jrsonnet --version 0.5.0-pre98 >&2 ||
          peer_arguments+=(--install-failed jrsonnet)
      fi
      continue
    fi
    case "$peer" in
      jsonnet) module=_gojsonnet package='gojsonnet==0.22.0' ;;
      kcl) module=kcl_lib.api package='kcl-lib==0.13.2' ;;
      jinja2) module=jinja2 package='jinja2==3.1.6' ;;
      *) echo "error: unknown peer $peer; the peers are jsonnet, jrsonnet, kcl and jinja2" >&2; exit 2 ;;
    esac
    if ! "$python" -c "import $module" 2>/dev/null; then
      echo "installing $package into $venv" >&2
      pip_install "$package" || peer_arguments+=(--install-failed "$peer")
    fi
  done
  # Jinja2 stands in for a peer that cannot be installed or run.
  if [[ ",$peers," != *,jinja2,* ]] && ! "$python" -c 'import jinja2' 2>/dev/null; then
    pip_install 'jinja2==3.1.6' || peer_arguments+=(--install-failed jinja2)
  fi
  peer_arguments+=(--peer-python "$python" --peers "$peers")
fi

python3 bench/report.py \
  --weave "${CARGO_TARGET_DIR:-target}/release/weave" \
  --generator "$generator" \
  --cache target/weave-bench \
  --tmpfs "$tmpfs_dir" \
  --disk "$disk_dir" \
  ${peer_arguments[@]+"${peer_arguments[@]}"} \
  ${passthrough[@]+"${passthrough[@]}"}
