#!/usr/bin/env bash
# Create .venv-zoo: the project's CPU torch plus torchvision's *model definitions*, for
# benchmarks/bench_coverage.py (the torchvision classification zoo through rapidnn.compose).
#
# Why a separate venv: torchvision's wheels are built against one exact torch; its compiled
# ops (torchvision/_C.so: nms, roi_align, image io) do not load beside this project's
# torch==2.13.0 CPU build, and `import torchvision` then fails with "operator torchvision::nms
# does not exist". The model definitions (torchvision.models) are pure Python and work with
# torch 2.13; benchmarks/_torchvision_shim.py makes the import succeed without the compiled ops.
#
# Versions: torch==2.13.0 (the CPU wheel on this machine's disk: never another torch, a
# constraint pins it for every pip call below); torchvision==0.28.0 (the release paired with
# torch 2.13), installed with --no-deps (its wheel pins torch exactly and would pull another
# build); pillow and numpy as pinned in pyproject.toml; rapidnn itself editable with --no-deps
# plus its dependencies as pinned in pyproject.toml (torch left out: already installed); ruff
# as pinned in pyproject.toml's test extra, to lint benchmarks/.
#
# Usage: bash benchmarks/zoo_env.sh            (idempotent: re-running reinstalls nothing new)
#        ZOO_VENV=/other/path bash benchmarks/zoo_env.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${ZOO_VENV:-$ROOT/.venv-zoo}"
PYTHON="${PYTHON:-python3.11}"
TORCH_VERSION="2.13.0"
TORCHVISION_VERSION="0.28.0"

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# every pip call below is constrained to this torch: pip can never replace it
CONSTRAINTS="$VENV/zoo-constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
pip_install() { "$PY" -m pip install -q -c "$CONSTRAINTS" "$@"; }

pip_install "torch==$TORCH_VERSION"
pip_install --no-deps "torchvision==$TORCHVISION_VERSION"

# rapidnn's own dependencies, with the versions pinned in pyproject.toml (torch excluded)
mapfile -t DEPS < <("$PY" - "$ROOT/pyproject.toml" <<'EOF'
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
for dep in project["dependencies"]:
    if re.split(r"[<>=!~ ;\[]", dep, maxsplit=1)[0].lower() != "torch":
        print(dep)
for dep in project["optional-dependencies"]["test"]:
    if dep.lower().startswith("ruff"):
        print(dep)
EOF
)
pip_install "${DEPS[@]}"
pip_install --no-deps -e "$ROOT"

# check: the torch is the CPU build asked for, and the zoo imports through the shim
"$PY" - "$TORCH_VERSION" <<EOF
import sys

import torch

assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
sys.path.insert(0, "$ROOT/benchmarks")
from _torchvision_shim import import_models

models = import_models()
import torchvision

print(f"{'$VENV'}: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"{len(models.list_models(module=models))} classification models")
EOF
