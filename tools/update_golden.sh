#!/usr/bin/env bash
# Rewrites tests/golden/quickstart-20-steps.json from a 20-step quickstart run (after an
# intended change to the arithmetic); review the diff before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
SAFEAWARE_UPDATE_GOLDEN=1 cargo test --release --features wgpu,cuda --test golden_losses
git --no-pager diff --stat -- tests/golden/
