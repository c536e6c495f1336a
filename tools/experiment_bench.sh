#!/usr/bin/env bash
# Times `safeaware experiment run experiments/methods-synthetic.toml` from nothing (training
# both models, evaluating the seven arms with their counterfactual-image runs, writing the
# comparison) against the issue's target of 30 minutes on 2 CPU cores, and records the machine
# load, since other work on the machine inflates the time.
#
# Usage: tools/experiment_bench.sh [--out DIR] [--experiment FILE]
# DIR (default target/experiment-bench) is emptied first so nothing is reused; the run's log is
# DIR/log.txt and the comparison is in DIR (comparison.md, comparison.json, comparison.html).
set -euo pipefail
cd "$(dirname "$0")/.."

out="target/experiment-bench"
experiment="experiments/methods-synthetic.toml"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --experiment) experiment=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | cut -c3-; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cargo build --release --quiet
rm -rf "$out"
mkdir -p "$out"
echo "load before: $(uptime)"
start=$(date +%s)
target/release/safeaware experiment run "$experiment" --out "$out" > "$out/log.txt" 2>&1
end=$(date +%s)
echo "load after:  $(uptime)"
wall=$((end - start))
printf 'wall time: %d min %02d s (target: 30 min on 2 CPU cores)\n' $((wall / 60)) $((wall % 60))
sed -n '/arms side by side/,/^## /p' "$out/comparison.md" | sed '$d'
