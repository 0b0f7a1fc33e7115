"""Models already in the local Hugging Face cache, by their hub id (`HuggingFaceTB/SmolLM2-135M-Instruct`).

Never downloads: the project runs offline, so an id resolves only to a snapshot already on this machine (put
there by `huggingface-cli download` or any earlier `from_pretrained`), looked up with huggingface_hub's own
cache layout and environment (HF_HOME, HF_HUB_CACHE)."""

from __future__ import annotations

import re
from pathlib import Path

# org/name, optionally @revision (a branch, tag or commit); what the hub accepts as a repo id
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def looks_like_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and not spec.startswith((".", "/", "~"))


def cached_model_dir(spec: str, cache_dir: str | Path | None = None) -> Path | None:
    """The local snapshot directory of hub id `spec` (with config.json), or None when it is not cached."""
    if not looks_like_hub_id(spec):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, _, revision = spec.partition("@")
    try:
        path = Path(snapshot_download(repo, revision=revision or None, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None
    return path if (path / "config.json").is_file() else None
