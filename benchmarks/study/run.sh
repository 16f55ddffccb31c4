#!/usr/bin/env bash
# Issue 20's study, staged and resumable: one pool after the other (the order below), each
# as `cryoal benchmark --preset cpu --config benchmarks/study/<pool>.yaml`, its finished runs
# put back from benchmarks/results/study/<pool>/ first and kept there after every pass, so
# a study spans several sittings. Pools: snr01_balanced snr01_lt10 snr005_balanced
# snr005_lt10 (default: all, in that order).
#
#   bash benchmarks/study/run.sh [OUT_ROOT] [POOL ...]     # OUT_ROOT default /work/study
#
# Runs two (strategy, seed) runs at once, one torch thread each; pretraining (once per
# pool) uses both cores. Log: OUT_ROOT/<pool>.log. Finished runs (and the pool's encoder)
# are kept every 5 minutes; commit benchmarks/results/study/ to carry them to the next
# sitting.
set -euo pipefail
cd "$(dirname "$0")/../.."
out_root=${1:-/work/study}
shift || true
pools=("$@")
[ ${#pools[@]} -gt 0 ] || pools=(snr01_balanced snr01_lt10 snr005_balanced snr005_lt10)
py=${PYTHON:-.venv/bin/python}
for pool in "${pools[@]}"; do
  out="$out_root/$pool"
  mkdir -p "$out"
  if [ -d "benchmarks/results/study/$pool" ]; then
    "$py" benchmarks/study/keep.py restore "$pool" "$out"
  fi
  echo "$(date -u +%FT%TZ) $pool: start" >> "$out_root/$pool.log"
  # keep finished runs every 5 minutes, so a sitting that ends mid-pool loses only runs
  # in progress
  ( while sleep 300; do "$py" benchmarks/study/keep.py save "$out" "$pool" > /dev/null; done ) &
  saver=$!
  trap 'kill $saver 2> /dev/null || true' EXIT
  "$py" -m cryoal benchmark --preset cpu --config "benchmarks/study/$pool.yaml" --jobs 2 \
      --out "$out" >> "$out_root/$pool.log" 2>&1  # a plain progress line per tenth
  kill $saver 2> /dev/null || true
  "$py" benchmarks/study/keep.py save "$out" "$pool"
  echo "$(date -u +%FT%TZ) $pool: done" >> "$out_root/$pool.log"
done
