#!/usr/bin/env bash
# Measures the quickstart targets of the trainer issue: whole-command wall time (≤ 10 min on
# 2 CPU cores) and Total (strict parser) on the held-out synthetic test (≥ 0.90), with the
# authors' rule beside it and a line per run on where the two parsers disagree.
#
# Usage: tools/quickstart_bench.sh [--recipes "quickstart quickstart-direct"] [--seeds "1 2"]
#                                  [--out DIR]
# Each run is `safeaware train --recipe recipes/<name>.toml --set train.seed=<seed>` (seeds
# default to the recipe's own train.seed) into a fresh folder under DIR (default
# target/quickstart-bench); runs go one after another, so measure on an otherwise idle machine.
# The synthetic data is generated once into DIR/.cache and reused by the later runs, so run the
# first one twice if you want its time without the data generation.
# Prints a Markdown table (a row per parser), then each run's parser-disagreement line; each
# run's log and report stay in its folder.
set -euo pipefail
cd "$(dirname "$0")/.."

recipes="quickstart quickstart-direct"
seeds=""
out="target/quickstart-bench"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --recipes) recipes=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | cut -c3-; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cargo build --release --quiet
bin=target/release/safeaware
mkdir -p "$out"
notes="$out/parser-notes.txt"
: > "$notes"
echo "| recipe | seed | wall | parser | typical | attack | over-safe | Total | target met |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for recipe in $recipes; do
  recipe_seed=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["train"]["seed"])' \
    "recipes/$recipe.toml")
  for seed in ${seeds:-$recipe_seed}; do
    run="$out/$recipe-seed$seed"
    rm -rf "$run"
    start=$(date +%s)
    "$bin" train --recipe "recipes/$recipe.toml" --set "train.seed=$seed" --out "$run" \
      > "$out/$recipe-seed$seed.log" 2>&1
    wall=$(( $(date +%s) - start ))
    python3 - "$run/eval/final/results.json" "$recipe" "$seed" "$wall" "$notes" <<'EOF'
import json, sys
path, recipe, seed, wall, notes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
r = json.load(open(path))
pct = lambda x: f"{100 * x:.1f}"
met = "yes" if wall <= 600 and r["strict"]["total"] >= 0.90 else "no"
for parser, name in [("strict", "strict"), ("paper", "authors' rule")]:
    s = r[parser]
    print(f"| {recipe} | {seed} | {wall // 60} min {wall % 60:02d} s | {name} "
          f"| {pct(s['typical']['accuracy'])} | {pct(s['attack']['accuracy'])} "
          f"| {pct(s['over_safety']['accuracy'])} | {pct(s['total'])} "
          f"| {met if parser == 'strict' else ''} |")
d = r.get("parser_disagreement", {})
note = d.get("note") or "the parsers agree on every item"
with open(notes, "a") as f:
    f.write(f"{recipe} seed {seed}: {note}\n")
EOF
  done
done
echo
cat "$notes"
