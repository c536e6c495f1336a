#!/usr/bin/env bash
# One-shot GPU benchmark, safeaware vs HF transformers + PyTorch, on one NVIDIA GPU (sized for an H100,
# at most about 9 minutes: the doctor, 180 s of compared runs and 90 s of ops runs, each budget
# overrun by at most one run of 120 s). It first runs `safeaware doctor --device cuda:0` (devices, HF parity on the
# shipped fixtures, training steps against the CPU, timing; doctor.txt); a failed check
# is reported and the benchmark still runs. Then, with the SmolVLM-256M-sized config and random weights:
#   train-bf16  training step, B 8, T 512, bf16   (tokens/s, MFU)
#   gen-b1      greedy generation, B 1, T 256, K 64, bf16 (new tokens/s)
#   train-f32   training step, B 8, T 512, f32    (tokens/s, MFU)
#   gen-b8      greedy generation, B 8, T 256, K 64, bf16
# The runs are interleaved through tools/bench_compare.sh. Round 1 covers every case before round 2
# starts, and no new run starts after --budget seconds.
# Then the custom ops against Burn's (safeaware only; ops.jsonl, ops.md): a bf16-mixed training step
# of the same config at B 1, T 2048 (one tile), 5 steps after 2 warm-up, in four runs:
#   ops-both      memory-efficient attention and the chunked loss (the default)
#   ops-no-mea    SAFEAWARE_MEA=0: Burn's attention (keeps [B, H, T, T] probabilities a layer)
#   ops-no-chunk  SAFEAWARE_CHUNKED_CE=0: Burn's loss (keeps the [T, V] logits)
#   ops-neither   both off (the step before issue 27)
# each with its step time and CubeCL's pool peaks (pool_reserved_peak_mib, pool_in_use_peak_mib)
# besides nvidia-smi's process memory; no ops run starts after --ops-budget seconds.
#
#   tools/gpu_bench.sh [--safeaware PATH] [--model DIR] [--python PATH] [--rounds N] [--budget S]
#                      [--run-timeout S] [--dry-run]
#
#   --safeaware PATH   prebuilt x86-64 binary built with `--features cuda`   SAFEAWARE_BIN (target/release/safeaware)
#   --model DIR        model folder                                           SMOL_MODEL (model/tests/fixtures/config_only/smolvlm-256m)
#   --python PATH      python with torch + transformers                       PYTHON (python3)
#   --rounds N         rounds (default 2)                                     ROUNDS
#   --budget S         start no new run after S seconds (default 180)         BUDGET_S
#   --ops-budget S     start no new ops run after S seconds (default 90)      OPS_BUDGET_S
#   --run-timeout S    kill a single run after S seconds (default 120)        RUN_TIMEOUT
#   --nccl-bin PATH    optional: a binary built with `--no-default-features --features cuda,nccl`
#                      SAFEAWARE_NCCL_BIN; when given, 10 quickstart steps run on cuda:0 once
#                      plainly and once through the NCCL path with one rank
#                      (SAFEAWARE_DATA_PARALLEL=nccl), and nccl.txt compares their losses. One GPU
#                      cannot host two NCCL workers (a device may be listed once, and NCCL refuses
#                      two ranks on one GPU), so the 2-GPU all-reduce itself is not exercised.
#   --dry-run          print what would run, touch nothing
#
# Output goes to $OUT if that is set, else ./bench_out/. It is seven files: nvidia-smi.txt (the card),
# doctor.txt (the self-check), results.jsonl (one JSON line per run), results.md (the
# table), results.log (the commands and their stderr), ops.jsonl and ops.md (the ops runs; their
# stderr goes to ops.log). If python cannot import torch and transformers and a wheel folder .whl/ exists, the wheels
# are installed into /tmp/safeaware-bench-site first. If one side cannot run at all (no binary, or no
# torch), the other side still runs and the script exits 1.
# MFU = 6 * params * tokens/s / peak. The peak is dense BF16 / FP32 for the card nvidia-smi names:
# H100 SXM 989 / 67 TFLOP/s, H100 PCIe 756 / 51, H100 NVL 835 / 60, H200 989 / 67. Override with
# PEAK_BF16_TFLOPS / PEAK_F32_TFLOPS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() { echo "gpu_bench: error: $*" >&2; exit 2; }
note() { echo "gpu_bench: $*" >&2; }

SAFEAWARE_BIN=${SAFEAWARE_BIN:-target/release/safeaware}
SMOL_MODEL=${SMOL_MODEL:-model/tests/fixtures/config_only/smolvlm-256m}
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-2}
BUDGET_S=${BUDGET_S:-180}
OPS_BUDGET_S=${OPS_BUDGET_S:-90}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
OUT_DIR=${OUT:-bench_out}
DRY_RUN=0
NCCL_BIN=${SAFEAWARE_NCCL_BIN:-}

need() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --safeaware) need "$@"; SAFEAWARE_BIN=$2; shift 2 ;;
    --model) need "$@"; SMOL_MODEL=$2; shift 2 ;;
    --python) need "$@"; PYTHON=$2; shift 2 ;;
    --rounds) need "$@"; ROUNDS=$2; shift 2 ;;
    --budget) need "$@"; BUDGET_S=$2; shift 2 ;;
    --ops-budget) need "$@"; OPS_BUDGET_S=$2; shift 2 ;;
    --run-timeout) need "$@"; RUN_TIMEOUT=$2; shift 2 ;;
    --nccl-bin) need "$@"; NCCL_BIN=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$SMOL_MODEL" != *,* ]] || die "--model must not contain a comma"

M=$SMOL_MODEL
CASES=(
  --case "train-bf16,train,$M,8,512,,bf16,20,5"
  --case "gen-b1,generate,$M,1,256,64,bf16,5,2"
  --case "train-f32,train,$M,8,512,,f32,10,3"
  --case "gen-b8,generate,$M,8,256,64,bf16,5,2"
)
COMPARE=(tools/bench_compare.sh --device cuda --threads "$(nproc)" --rounds "$ROUNDS" --order alternate
         --time-budget "$BUDGET_S" --run-timeout "$RUN_TIMEOUT" --safeaware "$SAFEAWARE_BIN"
         --out "$OUT_DIR/results.jsonl" "${CASES[@]}")

# The custom ops against Burn's: name and environment of each run, and its command.
OPS_CASES=(
  "ops-both:"
  "ops-no-mea:SAFEAWARE_MEA=0"
  "ops-no-chunk:SAFEAWARE_CHUNKED_CE=0"
  "ops-neither:SAFEAWARE_MEA=0 SAFEAWARE_CHUNKED_CE=0"
)
OPS_CMD=("$SAFEAWARE_BIN" bench train --model "$M" --device cuda:0 --dtype bf16-mixed --batch 1
         --seq 2048 --steps 5 --warmup 2 --json)

# Runs the ops cases in order (no new one after OPS_BUDGET_S seconds): one JSON line each, with
# its name and environment, into ops.jsonl; a failed run (out of memory, say) is a line with its
# error. Then ops.md tabulates them.
ops_bench() {
  local start=$SECONDS entry name env line
  : > "$OUT_DIR/ops.jsonl"
  for entry in "${OPS_CASES[@]}"; do
    name=${entry%%:*} env=${entry#*:}
    if (( SECONDS - start > OPS_BUDGET_S )); then note "ops: budget spent, $name not run"; continue; fi
    note "ops: $name ${env:-(defaults)}"
    # shellcheck disable=SC2086 # env is a list of NAME=VALUE words
    if line=$(env $env timeout "$RUN_TIMEOUT" "${OPS_CMD[@]}" 2>>"$OUT_DIR/ops.log" | tail -n 1) \
        && [[ "$line" == "{"* ]]; then
      "$PYTHON" -c 'import json,sys; r=json.loads(sys.argv[1]); r["case"]=sys.argv[2]; r["env"]=sys.argv[3]; print(json.dumps(r))' \
        "$line" "$name" "$env" >> "$OUT_DIR/ops.jsonl"
    else
      printf '{"case": "%s", "env": "%s", "error": "failed or timed out (see ops.log)"}\n' "$name" "$env" >> "$OUT_DIR/ops.jsonl"
    fi
  done
  "$PYTHON" - "$OUT_DIR/ops.jsonl" > "$OUT_DIR/ops.md" <<'PY'
import json, sys
print("| case | env | median s/step | tokens/s | pool reserved peak MiB | pool in use peak MiB | nvidia-smi MiB | loss first -> last |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in map(json.loads, open(sys.argv[1])):
    if "error" in r:
        print(f"| {r['case']} | {r['env']} | {r['error']} | | | | | |")
        continue
    f = lambda k, p=1: "-" if r.get(k) is None else f"{r[k]:.{p}f}"
    print(f"| {r['case']} | {r['env'] or '(defaults)'} | {f('median_s', 3)} | {f('tokens_per_s', 0)} | "
          f"{f('pool_reserved_peak_mib')} | {f('pool_in_use_peak_mib')} | {f('peak_mem_mib')} | "
          f"{f('loss_first', 4)} -> {f('loss_last', 4)} |")
PY
}

if [[ "$DRY_RUN" == 1 ]]; then
  echo "# gpu_bench dry run: output to $OUT_DIR/"
  echo "nvidia-smi > $OUT_DIR/nvidia-smi.txt"
  echo "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv >> $OUT_DIR/nvidia-smi.txt"
  echo "$SAFEAWARE_BIN doctor --device cuda:0 --model $SMOL_MODEL > $OUT_DIR/doctor.txt"
  echo "# if '$PYTHON' cannot import torch+transformers and .whl/ exists:"
  echo "$PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/safeaware-bench-site .whl/*.whl"
  echo "# peaks for MFU from the GPU name (H100 SXM: 989 bf16 / 67 f32 TFLOP/s)"
  printf '%q ' "${COMPARE[@]}" --python "$PYTHON"; echo
  echo "# which runs, in this order:"
  PYTHON=$PYTHON "${COMPARE[@]}" --dry-run
  echo "# then the custom ops against Burn's (no new run after ${OPS_BUDGET_S}s) into $OUT_DIR/ops.jsonl, ops.md:"
  for entry in "${OPS_CASES[@]}"; do
    env=${entry#*:}
    echo "${env:+$env }timeout $RUN_TIMEOUT $(printf '%q ' "${OPS_CMD[@]}")# ${entry%%:*}"
  done
  [[ -z "$NCCL_BIN" ]] || echo "# then the one-rank NCCL check with $NCCL_BIN into $OUT_DIR/nccl.txt"
  exit 0
fi

mkdir -p "$OUT_DIR"

# -------------------------------------------------------------------------------------- the card
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this script needs an NVIDIA GPU"
{
  nvidia-smi
  echo
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
} > "$OUT_DIR/nvidia-smi.txt" 2>&1 || die "nvidia-smi failed: $(tail -n 3 "$OUT_DIR/nvidia-smi.txt")"
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
note "GPU: $GPU_NAME"
case "$GPU_NAME" in
  *H100*PCIe*) PEAKS=(756 51) ;;
  *H100*NVL*)  PEAKS=(835 60) ;;
  *H100*|*H200*) PEAKS=(989 67) ;;
  *) PEAKS=(989 67); note "WARNING: unknown card '$GPU_NAME'; MFU uses the H100 SXM peaks (set PEAK_BF16_TFLOPS / PEAK_F32_TFLOPS)" ;;
esac
export PEAK_BF16_TFLOPS=${PEAK_BF16_TFLOPS:-${PEAKS[0]}}
export PEAK_F32_TFLOPS=${PEAK_F32_TFLOPS:-${PEAKS[1]}}
note "MFU peaks: $PEAK_BF16_TFLOPS TFLOP/s bf16, $PEAK_F32_TFLOPS TFLOP/s f32"

# ------------------------------------------------------------------------------------ self-check
if [[ -x "$SAFEAWARE_BIN" ]]; then
  note "safeaware doctor --device cuda:0"
  "$SAFEAWARE_BIN" doctor --device cuda:0 --model "$SMOL_MODEL" > "$OUT_DIR/doctor.txt" 2>&1 \
    || note "WARNING: doctor reported a failed check (see doctor.txt)"
  cat "$OUT_DIR/doctor.txt" >&2
fi

# --------------------------------------------------------------------------------------- the sides
ONLY=()
if ! "$PYTHON" -c 'import torch, transformers' 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    note "installing the wheels in .whl/ into /tmp/safeaware-bench-site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/safeaware-bench-site .whl/*.whl
    export PYTHONPATH=/tmp/safeaware-bench-site${PYTHONPATH:+:$PYTHONPATH}
  fi
fi
TORCH_OK=0
if "$PYTHON" -c 'import torch, transformers, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  TORCH_OK=1
  "$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "gpu", torch.cuda.get_device_name(0))' >&2
else
  note "WARNING: '$PYTHON' has no working torch + transformers with CUDA: running the safeaware side only"
  ONLY=(--safeaware-only)
fi
SA_OK=0
if [[ -x "$SAFEAWARE_BIN" ]] && "$SAFEAWARE_BIN" bench --help >/dev/null 2>&1; then
  SA_OK=1
else
  note "WARNING: '$SAFEAWARE_BIN' is missing or has no 'bench' command: running the torch side only"
  ONLY=(--torch-only)
fi
[[ "$TORCH_OK" == 1 || "$SA_OK" == 1 ]] || die "neither side can run (no safeaware binary, no torch with CUDA)"

# ------------------------------------------------------------------------- one-rank NCCL check
# 10 quickstart steps on cuda:0, plainly and through the NCCL path with one rank (Burn's
# communication server, parameters marked distributed, an NCCL all-reduce inside every
# backward); the per-step losses should agree to float rounding.
nccl_check() {
  local bin=$1 dir
  dir=$(mktemp -d)
  local args=(train --recipe recipes/quickstart.toml --devices cuda:0 --no-eval
              --set train.max_steps=10 --set train.log_every=1 --set data.synthetic.train=256
              --set data.synthetic.val=16 --set data.synthetic.test=16 --set data.synthetic.describe_only=0)
  timeout "$RUN_TIMEOUT" "$bin" "${args[@]}" --out "$dir/plain" || return 1
  SAFEAWARE_DATA_PARALLEL=nccl timeout "$RUN_TIMEOUT" "$bin" "${args[@]}" --out "$dir/nccl" || return 1
  "$PYTHON" - "$dir/plain/metrics.jsonl" "$dir/nccl/metrics.jsonl" <<'PY'
import json, sys
plain, nccl = ([json.loads(l)["loss"] for l in open(p) if '"loss"' in l] for p in sys.argv[1:])
worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(plain, nccl))
print("plain:", plain); print("nccl: ", nccl); print(f"largest relative difference {worst:.3g}")
sys.exit(0 if len(plain) == len(nccl) == 10 and worst <= 1e-5 else 1)
PY
}

# -------------------------------------------------------------------------------------------- run
rc=0
"${COMPARE[@]}" --python "$PYTHON" "${ONLY[@]}" || rc=$?
if [[ "$SA_OK" == 1 ]]; then
  ops_bench
  cat "$OUT_DIR/ops.md" >&2
fi
if [[ -n "$NCCL_BIN" ]]; then
  nccl_check "$NCCL_BIN" > "$OUT_DIR/nccl.txt" 2>&1 || { rc=1; note "WARNING: the NCCL check failed"; }
  cat "$OUT_DIR/nccl.txt" >&2
fi
note "GPU: $GPU_NAME; outputs in $OUT_DIR/: nvidia-smi.txt doctor.txt results.jsonl results.md results.log ops.jsonl ops.md ops.log"
if [[ "$TORCH_OK" != 1 || "$SA_OK" != 1 ]]; then rc=1; fi
exit "$rc"
