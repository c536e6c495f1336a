#!/usr/bin/env bash
# Makes tools/.venv, the Python environment of the interop tests (HF transformers and PEFT load
# what safeaware writes, parity fixtures): python3 -m venv + pip from PyPI, versions pinned so
# that a fresh machine gets what the fixtures were made with. Idempotent: a venv that already
# imports every package at its pinned version is left as it is. PyPI's Linux torch wheel pulls
# the CUDA runtime packages (about 5.6 GB in all; 3-5 minutes cold on a 2-core machine); the
# tests run it on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=tools/.venv
PINS=(torch==2.15.0 transformers==5.25.0 peft==0.21.2 safetensors==0.8.0 pillow==13.0.0 numpy==2.4.6)

ready() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import torch, transformers, peft, safetensors, PIL, numpy  # noqa: E401,F401
PY
}

if ready; then
  exit 0
fi
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "setup_venv: no $PYTHON: install Python 3.10+ (with venv)" >&2; exit 1; }
echo "setup_venv: creating $VENV (torch, transformers, peft; a few minutes)" >&2
start=$SECONDS
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
ready || { echo "setup_venv: $VENV still lacks a pinned package after pip install" >&2; exit 1; }
echo "setup_venv: ready in $((SECONDS - start)) s" >&2
