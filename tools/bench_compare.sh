#!/usr/bin/env bash
# Side-by-side speed benchmark: `safeaware bench` vs tools/torch_reference.py (HF transformers + PyTorch).
# Both sides use the same model, shapes, threads and device. The runs are interleaved and every JSON line
# goes to a results file. The script ends with a Markdown table of the medians and
# ratio = safeaware throughput / torch throughput.
#
#   tools/bench_compare.sh [options]
#
# Options (each has an environment variable of the same meaning; a flag wins over the variable):
#   --quickstart M      quickstart model: a folder, or a preset name (tiny, small)  QUICKSTART_MODEL
#                       (checkpoints/quickstart/final if it has config.json, else tiny)
#                       A preset name in any case's model field is first written to target/bench/models/<name>
#                       with `safeaware bench export` (seeded random weights), and both sides load that folder.
#   --smol DIR          SmolVLM-256M-sized model folder    SMOL_MODEL        (model/tests/fixtures/config_only/smolvlm-256m)
#   --cases LIST        default cases to run, comma-separated  CASES         (all: qs-train-b8,qs-gen-b1,qs-gen-b8,smol-train-b1,smol-gen-b1)
#   --case SPEC         extra case, repeatable: name,mode,model,batch,seq[,new_tokens[,dtype[,steps[,warmup]]]]
#                       (empty fields take the defaults). If --case is given, the default cases run only if --cases is also given.
#   --rounds N          rounds per case                    ROUNDS            (3)
#   --order O           alternate | abab                   ORDER             (alternate)
#                       abab: every round runs safeaware, then torch. alternate: odd rounds run safeaware
#                       first, even rounds torch first, so slow drift (heat, other load) hits both sides equally.
#   --threads N         threads, passed to both sides      THREADS           (nproc)
#   --device D          cpu | cuda | cuda:N, passed to both sides  DEVICE    (cpu)
#   --dtype D           f32 | bf16, default for all cases  DTYPE             (f32)
#   --qs-seq T          T for the quickstart cases         QS_SEQ            (128)
#   --smol-seq T        T for the SmolVLM-256M cases       SMOL_SEQ          (256)
#   --new-tokens K      K for generate cases               NEW_TOKENS        (64)
#   --steps N / --warmup W          train steps            STEPS / WARMUP    (5 / 1)
#   --gen-steps N / --gen-warmup W  generate calls         GEN_STEPS / GEN_WARMUP (3 / 1)
#   --safeaware PATH    the safeaware binary               SAFEAWARE_BIN     (target/release/safeaware)
#   --python PATH       python with torch + transformers   PYTHON            (tools/.venv/bin/python if present, else python3)
#   --safeaware-args S  extra words for `safeaware bench`   SAFEAWARE_ARGS   ("")
#   --torch-args S      extra words for torch_reference.py  TORCH_ARGS       ("", e.g. "--attn eager")
#   --dtype-flag F      flag that gives safeaware a non-f32 dtype  SAFEAWARE_DTYPE_FLAG (--dtype; "" = never pass one)
#   --torch-only        run only the torch side (the safeaware columns stay empty)      ONLY=torch
#   --safeaware-only    run only the safeaware side (the torch columns stay empty)      ONLY=safeaware
#   --peak-bf16 / --peak-f32 TFLOPS  peaks for the table's MFU column (GPU train rows)
#                                    PEAK_BF16_TFLOPS / PEAK_F32_TFLOPS (989 / 67, H100 SXM dense)
#   --run-timeout S     kill a single run after S seconds (0 = no limit)    RUN_TIMEOUT (0)
#   --time-budget S     start no new run after S seconds (0 = no limit)     TIME_BUDGET (0)
#   --out FILE          results JSONL                      OUT_FILE          (target/bench/compare-<UTC time>.jsonl)
#                       The table goes to FILE with .md instead of .jsonl, and the runs' stderr to .log.
#   --dry-run           print the commands in run order and exit
#
# Exit status: 0 all runs ok; 1 some run failed (the table is still written); 2 setup error (missing
# binary, missing `bench` command, missing model folder, no torch).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() { echo "bench_compare: error: $*" >&2; exit 2; }
note() { echo "bench_compare: $*" >&2; }

QUICKSTART_MODEL=${QUICKSTART_MODEL:-}
SMOL_MODEL=${SMOL_MODEL:-model/tests/fixtures/config_only/smolvlm-256m}
CASES=${CASES:-}
ROUNDS=${ROUNDS:-3}
ORDER=${ORDER:-alternate}
THREADS=${THREADS:-$(nproc)}
DEVICE=${DEVICE:-cpu}
DTYPE=${DTYPE:-f32}
QS_SEQ=${QS_SEQ:-128}
SMOL_SEQ=${SMOL_SEQ:-256}
NEW_TOKENS=${NEW_TOKENS:-64}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-1}
GEN_STEPS=${GEN_STEPS:-3}
GEN_WARMUP=${GEN_WARMUP:-1}
SAFEAWARE_BIN=${SAFEAWARE_BIN:-target/release/safeaware}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x tools/.venv/bin/python ]]; then PYTHON=tools/.venv/bin/python; else PYTHON=python3; fi
fi
SAFEAWARE_ARGS=${SAFEAWARE_ARGS:-}
TORCH_ARGS=${TORCH_ARGS:-}
SAFEAWARE_DTYPE_FLAG=${SAFEAWARE_DTYPE_FLAG---dtype}
ONLY=${ONLY:-}
PEAK_BF16_TFLOPS=${PEAK_BF16_TFLOPS:-989}
PEAK_F32_TFLOPS=${PEAK_F32_TFLOPS:-67}
RUN_TIMEOUT=${RUN_TIMEOUT:-0}
TIME_BUDGET=${TIME_BUDGET:-0}
OUT_FILE=${OUT_FILE:-}
DRY_RUN=0
EXTRA_CASES=()

need() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quickstart) need "$@"; QUICKSTART_MODEL=$2; shift 2 ;;
    --smol) need "$@"; SMOL_MODEL=$2; shift 2 ;;
    --cases) need "$@"; CASES=$2; shift 2 ;;
    --case) need "$@"; EXTRA_CASES+=("$2"); shift 2 ;;
    --rounds) need "$@"; ROUNDS=$2; shift 2 ;;
    --order) need "$@"; ORDER=$2; shift 2 ;;
    --threads) need "$@"; THREADS=$2; shift 2 ;;
    --device) need "$@"; DEVICE=$2; shift 2 ;;
    --dtype) need "$@"; DTYPE=$2; shift 2 ;;
    --qs-seq) need "$@"; QS_SEQ=$2; shift 2 ;;
    --smol-seq) need "$@"; SMOL_SEQ=$2; shift 2 ;;
    --new-tokens) need "$@"; NEW_TOKENS=$2; shift 2 ;;
    --steps) need "$@"; STEPS=$2; shift 2 ;;
    --warmup) need "$@"; WARMUP=$2; shift 2 ;;
    --gen-steps) need "$@"; GEN_STEPS=$2; shift 2 ;;
    --gen-warmup) need "$@"; GEN_WARMUP=$2; shift 2 ;;
    --safeaware) need "$@"; SAFEAWARE_BIN=$2; shift 2 ;;
    --python) need "$@"; PYTHON=$2; shift 2 ;;
    --safeaware-args) [[ $# -ge 2 ]] || die "$1 needs a value"; SAFEAWARE_ARGS=$2; shift 2 ;;
    --torch-args) [[ $# -ge 2 ]] || die "$1 needs a value"; TORCH_ARGS=$2; shift 2 ;;
    --dtype-flag) [[ $# -ge 2 ]] || die "$1 needs a value"; SAFEAWARE_DTYPE_FLAG=$2; shift 2 ;;
    --torch-only) ONLY=torch; shift ;;
    --safeaware-only) ONLY=safeaware; shift ;;
    --peak-bf16) need "$@"; PEAK_BF16_TFLOPS=$2; shift 2 ;;
    --peak-f32) need "$@"; PEAK_F32_TFLOPS=$2; shift 2 ;;
    --run-timeout) need "$@"; RUN_TIMEOUT=$2; shift 2 ;;
    --time-budget) need "$@"; TIME_BUDGET=$2; shift 2 ;;
    --out) need "$@"; OUT_FILE=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [[ -z "$QUICKSTART_MODEL" ]]; then
  if [[ -f checkpoints/quickstart/final/config.json ]]; then QUICKSTART_MODEL=checkpoints/quickstart/final; else QUICKSTART_MODEL=tiny; fi
fi

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_pos() { [[ "$1" =~ ^[0-9]+$ && "$1" -ge 1 ]]; }
for v in ROUNDS THREADS QS_SEQ SMOL_SEQ NEW_TOKENS STEPS WARMUP GEN_STEPS GEN_WARMUP RUN_TIMEOUT TIME_BUDGET; do
  is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
[[ "$ROUNDS" -ge 1 ]] || die "ROUNDS must be >= 1"
[[ -z "$ONLY" || "$ONLY" == torch || "$ONLY" == safeaware ]] || die "ONLY must be torch or safeaware"
[[ "$ORDER" == alternate || "$ORDER" == abab ]] || die "--order must be alternate or abab"
[[ "$DTYPE" == f32 || "$DTYPE" == bf16 ]] || die "--dtype must be f32 or bf16"
[[ "$DEVICE" == cpu || "$DEVICE" == cuda || "$DEVICE" =~ ^cuda:[0-9]+$ ]] || die "--device must be cpu, cuda or cuda:N"

# ---------------------------------------------------------------------------------------- cases
# Internal form: name,mode,model,batch,seq,new_tokens,dtype,steps,warmup
default_case() {
  case "$1" in
    qs-train-b8)   echo "qs-train-b8,train,$QUICKSTART_MODEL,8,$QS_SEQ,,,," ;;
    qs-gen-b1)     echo "qs-gen-b1,generate,$QUICKSTART_MODEL,1,$QS_SEQ,,,," ;;
    qs-gen-b8)     echo "qs-gen-b8,generate,$QUICKSTART_MODEL,8,$QS_SEQ,,,," ;;
    smol-train-b1) echo "smol-train-b1,train,$SMOL_MODEL,1,$SMOL_SEQ,,,," ;;
    smol-gen-b1)   echo "smol-gen-b1,generate,$SMOL_MODEL,1,$SMOL_SEQ,,,," ;;
    *) die "unknown case '$1' (default cases: qs-train-b8 qs-gen-b1 qs-gen-b8 smol-train-b1 smol-gen-b1)" ;;
  esac
}
SPECS=()
if [[ -n "$CASES" || ${#EXTRA_CASES[@]} -eq 0 ]]; then
  IFS=, read -ra names <<< "${CASES:-qs-train-b8,qs-gen-b1,qs-gen-b8,smol-train-b1,smol-gen-b1}"
  for n in "${names[@]}"; do
    [[ -n "$n" ]] && SPECS+=("$(default_case "$n")")
  done
fi
SPECS+=("${EXTRA_CASES[@]}")
[[ ${#SPECS[@]} -gt 0 ]] || die "no cases selected"

# Validate every case and fill in the defaults, in place.
declare -A seen=()
for i in "${!SPECS[@]}"; do
  IFS=, read -r name mode model batch seq k dtype steps warm extra <<< "${SPECS[$i]},,,,,,,,"
  [[ -z "${extra//,/}" ]] || die "case '${SPECS[$i]}': too many fields"
  [[ -n "$name" && -z "${seen[$name]:-}" ]] || die "case '${SPECS[$i]}': empty or duplicate name"
  seen[$name]=1
  [[ "$mode" == train || "$mode" == generate ]] || die "case $name: mode must be train or generate, got '$mode'"
  [[ -n "$model" ]] || die "case $name: no model folder"
  is_pos "$batch" || die "case $name: bad batch '$batch'"
  is_pos "$seq" || die "case $name: bad seq '$seq'"
  k=${k:-$NEW_TOKENS}; dtype=${dtype:-$DTYPE}
  if [[ "$mode" == train ]]; then steps=${steps:-$STEPS}; warm=${warm:-$WARMUP}; else steps=${steps:-$GEN_STEPS}; warm=${warm:-$GEN_WARMUP}; fi
  { is_pos "$k" && is_pos "$steps" && is_uint "$warm"; } || die "case $name: bad new_tokens/steps/warmup"
  [[ "$dtype" == f32 || "$dtype" == bf16 ]] || die "case $name: dtype must be f32 or bf16"
  SPECS[i]="$name,$mode,$model,$batch,$seq,$k,$dtype,$steps,$warm"
done

# Preset names (no folder of that name) become exported folders; the export runs before the preflight.
PRESETS_RE='^(tiny|small)$'
declare -A EXPORTS=()
for i in "${!SPECS[@]}"; do
  IFS=, read -r name mode model rest <<< "${SPECS[$i]}"
  if [[ "$model" =~ $PRESETS_RE && ! -d "$model" ]]; then
    EXPORTS[$model]=target/bench/models/$model
    SPECS[i]="$name,$mode,target/bench/models/$model,$rest"
  fi
done
export_cmd() { echo "$SAFEAWARE_BIN" bench export --model "$1" --out "target/bench/models/$1"; }

# ------------------------------------------------------------------------------------- commands
read -ra SA_EXTRA <<< "$SAFEAWARE_ARGS"
read -ra TORCH_EXTRA <<< "$TORCH_ARGS"
CMD=()
build_cmd() {  # build_cmd IMPL SPEC -> CMD array
  local impl=$1 name mode model batch seq k dtype steps warm
  IFS=, read -r name mode model batch seq k dtype steps warm <<< "$2"
  if [[ "$impl" == safeaware ]]; then
    CMD=("$SAFEAWARE_BIN" bench "$mode" --model "$model" --batch "$batch" --seq "$seq"
         --steps "$steps" --warmup "$warm" --threads "$THREADS" --device "$DEVICE" --json)
    [[ "$mode" == generate ]] && CMD+=(--new-tokens "$k")
    # The Rust side runs f32 unless told otherwise; bench_table.py checks the dtype it reports.
    [[ "$dtype" != f32 && -n "$SAFEAWARE_DTYPE_FLAG" ]] && CMD+=("$SAFEAWARE_DTYPE_FLAG" "$dtype")
    CMD+=("${SA_EXTRA[@]}")
  else
    CMD=("$PYTHON" tools/torch_reference.py "$mode" --model "$model" --batch "$batch" --seq "$seq"
         --steps "$steps" --warmup "$warm" --threads "$THREADS" --device "$DEVICE" --dtype "$dtype" --json)
    [[ "$mode" == generate ]] && CMD+=(--new-tokens "$k")
    CMD+=("${TORCH_EXTRA[@]}")
  fi
  return 0
}

impls_for_round() {  # impls_for_round R -> order of the two sides in round R
  if [[ -n "$ONLY" ]]; then echo "$ONLY"
  elif [[ "$ORDER" == abab || $(( $1 % 2 )) -eq 1 ]]; then echo safeaware torch
  else echo torch safeaware
  fi
}

if [[ "$DRY_RUN" == 1 ]]; then
  echo "# $ROUNDS round(s), order $ORDER, threads $THREADS, device $DEVICE"
  for preset in "${!EXPORTS[@]}"; do echo "$(export_cmd "$preset")"; done
  for ((r = 1; r <= ROUNDS; r++)); do
    for spec in "${SPECS[@]}"; do
      for impl in $(impls_for_round "$r"); do
        build_cmd "$impl" "$spec"
        printf '# round %d %s %s\n' "$r" "${spec%%,*}" "$impl"
        printf '%q ' "${CMD[@]}"; echo
      done
    done
  done
  exit 0
fi

# ------------------------------------------------------------------------------------ preflight
for preset in "${!EXPORTS[@]}"; do
  [[ -x "$SAFEAWARE_BIN" ]] || die "preset '$preset' must be exported by '$SAFEAWARE_BIN bench export', which is missing (pass a model folder instead)"
  note "exporting preset $preset to target/bench/models/$preset"
  $(export_cmd "$preset") >/dev/null 2>&1 || die "'$(export_cmd "$preset")' failed"
done
for spec in "${SPECS[@]}"; do
  IFS=, read -r name _ model _ <<< "$spec"
  [[ -f "$model/config.json" ]] || die "case $name: model folder '$model' has no config.json (pass --quickstart/--smol DIR, or choose cases with --cases)"
done
if [[ "$ONLY" != safeaware ]]; then
  "$PYTHON" -c 'import torch, transformers' 2>/dev/null \
    || die "torch side: '$PYTHON' cannot import torch and transformers (see tools/README.md, pass --python, or --safeaware-only)"
else
  "$PYTHON" -c 'import json' 2>/dev/null || die "'$PYTHON' does not run (bench_table.py needs any python3)"
fi
if [[ "$ONLY" != torch ]]; then
  [[ -x "$SAFEAWARE_BIN" ]] \
    || die "safeaware side: no executable at '$SAFEAWARE_BIN' (build: cargo build --release; or pass --safeaware PATH; or --torch-only)"
  "$SAFEAWARE_BIN" bench --help >/dev/null 2>&1 \
    || die "safeaware side: '$SAFEAWARE_BIN bench --help' failed: this binary has no 'bench' command (use a newer build, or --torch-only)"
fi
# Threads are only comparable on an otherwise idle machine: with other load, torch's OpenMP threads
# wait on each other at every op (decode on 2 loaded cores was measured 16x slower at 2 threads than at 1).
loadavg() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?"; }
LOAD=$(loadavg)
if [[ "$LOAD" != "?" ]] && awk -v l="$LOAD" 'BEGIN { exit !(l > 0.5) }'; then
  note "WARNING: load average is $LOAD before starting; other processes will distort the timings (--threads $THREADS, $(nproc) cores here)"
fi
command -v timeout >/dev/null || [[ "$RUN_TIMEOUT" == 0 ]] || die "--run-timeout needs coreutils 'timeout'"

if [[ -z "$OUT_FILE" ]]; then
  mkdir -p target/bench
  OUT_FILE=target/bench/compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl
fi
mkdir -p "$(dirname "$OUT_FILE")"
BASE=${OUT_FILE%.jsonl}
TABLE_FILE=$BASE.md
LOG_FILE=$BASE.log
: > "$OUT_FILE"
{
  echo "# bench_compare $(date -u +%FT%TZ) on $(hostname): rounds $ROUNDS, order $ORDER, threads $THREADS, device $DEVICE"
  echo "# cases: ${SPECS[*]}"
} > "$LOG_FILE"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

FAILED=0
SKIPPED=0
run_one() {  # run_one ROUND IMPL SPEC
  local r=$1 impl=$2 name mode model batch seq k dtype steps warm rc=0
  IFS=, read -r name mode model batch seq k dtype steps warm <<< "$3"
  if [[ "$TIME_BUDGET" -gt 0 && "$SECONDS" -ge "$TIME_BUDGET" ]]; then
    note "time budget ${TIME_BUDGET}s used up: skipping round $r $name $impl"
    SKIPPED=$((SKIPPED + 1))
    return 0
  fi
  build_cmd "$impl" "$3"
  note "round $r/$ROUNDS $name $impl ..."
  echo "### round $r $name $impl (load $(loadavg)): $(printf '%q ' "${CMD[@]}")" >> "$LOG_FILE"
  if [[ "$RUN_TIMEOUT" -gt 0 ]]; then
    timeout "$RUN_TIMEOUT" "${CMD[@]}" > "$TMP/out" 2> "$TMP/err" || rc=$?
  else
    "${CMD[@]}" > "$TMP/out" 2> "$TMP/err" || rc=$?
  fi
  cat "$TMP/err" >> "$LOG_FILE"
  [[ "$rc" == 124 && "$RUN_TIMEOUT" -gt 0 ]] && echo "killed after --run-timeout ${RUN_TIMEOUT}s" >> "$TMP/err"
  local tag=(tag --case "$name" --round "$r" --impl "$impl" --mode "$mode" --batch "$batch" --seq "$seq"
             --dtype "$dtype" --device "$DEVICE" --threads "$THREADS" --rc "$rc" --stdout "$TMP/out" --stderr "$TMP/err")
  [[ "$mode" == generate ]] && tag+=(--new-tokens "$k")
  if ! "$PYTHON" tools/bench_table.py "${tag[@]}" >> "$OUT_FILE"; then
    FAILED=$((FAILED + 1))
  fi
}

for ((r = 1; r <= ROUNDS; r++)); do
  for spec in "${SPECS[@]}"; do
    for impl in $(impls_for_round "$r"); do
      run_one "$r" "$impl" "$spec"
    done
  done
done

rc=0
"$PYTHON" tools/bench_table.py table "$OUT_FILE" --peak-bf16-tflops "$PEAK_BF16_TFLOPS" \
  --peak-f32-tflops "$PEAK_F32_TFLOPS" > "$TABLE_FILE" || rc=1
cat "$TABLE_FILE"
echo
note "results: $OUT_FILE  table: $TABLE_FILE  log: $LOG_FILE"
[[ "$SKIPPED" -gt 0 ]] && note "$SKIPPED run(s) skipped for the time budget"
[[ "$FAILED" -gt 0 ]] && { note "$FAILED run(s) failed, see the table notes and $LOG_FILE"; rc=1; }
exit "$rc"
