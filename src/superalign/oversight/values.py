"""Evolving values: a run's constitution versions, human edits, and readable diffs between versions.

A run directory keeps its value history under `DIR/values/`:

    values/constitution-1.0.yaml   the run's starting constitution (its config's file, else the shipped one)
    values/constitution-1.1.yaml   each human edit or accepted clarification adds the next version
    values/index.json              [{version, file, parent, author, reason, source, created_at, changes}]

Files are written atomically (temp file + fsync + rename) under an exclusive lock, and the index is
replaced last: a crash leaves either the old history or the new one, never half a version. A version
is validated with the same pydantic model the critic loads (errors name file:line) before anything is
written, so an invalid edit leaves the history untouched.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from superalign.critic.constitution import (
    DEFAULT_CONSTITUTION,
    Constitution,
    RubricItem,
    dump_constitution,
    load_constitution,
)
from superalign.errors import UserError

VALUES_DIR = "values"
INDEX = "index.json"


@dataclass(frozen=True)
class ValueVersion:
    """One entry of values/index.json. `source`: packaged | config | edit | clarification."""

    version: str
    file: str
    parent: str | None
    author: str
    reason: str
    source: str
    created_at: str
    changes: tuple[str, ...] = ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def next_version(version: str) -> str:
    """'1.0' -> '1.1', '1.9' -> '1.10', 'v2' -> 'v3', 'beta' -> 'beta.1'."""
    m = re.fullmatch(r"(.*?)(\d+)", version)
    return f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{version}.1"


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a torn one."""
    from superalign.store.jsonl import atomic_write_text

    atomic_write_text(path, text)


def validate_text(text: str, label: str) -> Constitution:
    """The constitution in `text`, validated; UserError naming `label`:line on any problem.

    `label` should be a file the user can open (the text is written there when it is not already)."""
    path = Path(label)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return load_constitution(path)


def _read_index(index: Path) -> list[ValueVersion]:
    rows = json.loads(index.read_text(encoding="utf-8"))["versions"]
    return [ValueVersion(**{**r, "changes": tuple(r.get("changes", ()))}) for r in rows]


def stored_versions(run_dir: str | Path) -> list[ValueVersion]:
    """The run's value versions, oldest first, read without creating anything: [] before the history's
    first use (ValueHistory starts it). The index is replaced atomically, so no lock is needed to read it."""
    index = Path(run_dir) / VALUES_DIR / INDEX
    return _read_index(index) if index.is_file() else []


class ValueHistory:
    """The value versions of one run directory (created on first use from the run's constitution)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise UserError(f"--run {run_dir}: no such directory; give the --out directory of a `superalign run`")
        self.dir = self.run_dir / VALUES_DIR
        self.dir.mkdir(exist_ok=True)
        with self._locked():
            if not (self.dir / INDEX).is_file():
                self._init_first()

    # -- reading ---------------------------------------------------------------------------------

    def versions(self) -> list[ValueVersion]:
        """All versions, oldest first."""
        return _read_index(self.dir / INDEX)

    def current(self) -> ValueVersion:
        return self.versions()[-1]

    def entry(self, version: str | None = None) -> ValueVersion:
        """The index entry of `version` (None = current); UserError naming the known ones."""
        vs = self.versions()
        if version is None:
            return vs[-1]
        for v in vs:
            if v.version == version:
                return v
        raise UserError(
            f"no value version {version!r} in {self.dir / INDEX}; known: {', '.join(v.version for v in vs)}"
        )

    def path(self, version: str | None = None) -> Path:
        return self.dir / self.entry(version).file

    def load(self, version: str | None = None) -> Constitution:
        return load_constitution(self.path(version))

    # -- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the values directory (one writer at a time, across processes)."""
        import fcntl

        with open(self.dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _run_constitution(self) -> tuple[Path, str]:
        """The constitution file the run judged with (its stored config), and where that came from."""
        db = self.run_dir / "run.sqlite"
        if db.is_file():
            from superalign.store.runstore import RunStore

            with RunStore(db) as store:
                cfg = store.get_meta("config") or {}
            path = (cfg.get("critic") or {}).get("constitution")
            if path:
                return Path(path), "config"
        return DEFAULT_CONSTITUTION, "packaged"

    def _init_first(self) -> None:
        src, source = self._run_constitution()
        c = load_constitution(src)
        file = f"constitution-{c.version}.yaml"
        shutil.copyfile(src, self.dir / file)  # verbatim: keeps the file's comments
        first = ValueVersion(c.version, file, None, source, f"the run's constitution ({src})", source, _now())
        self._write_index([first])

    def _write_index(self, versions: Sequence[ValueVersion]) -> None:
        body = {"current": versions[-1].version, "versions": [asdict(v) for v in versions]}
        atomic_write(self.dir / INDEX, json.dumps(body, indent=1, ensure_ascii=False) + "\n")

    def add_version(self, text: str, author: str, reason: str, source: str, label: str) -> ValueVersion:
        """Validate `text` (a full constitution YAML), give it the next version number and append it.

        `label`: the file named in error messages (see validate_text). Raises UserError (nothing written)
        when the text is invalid or changes nothing."""
        if not reason.strip():
            raise UserError('say why the values change: --reason "..." (recorded with the version)')
        with self._locked():
            parent = self.current()
            old = load_constitution(self.dir / parent.file)
            new_v = next_version(parent.version)
            staged = validate_text(text, label)
            text = _set_version(text, new_v)
            new = staged.model_copy(update={"version": new_v})
            changes = tuple(describe_changes(old, new))
            if not changes:
                raise UserError(f"{label}: the edit changes nothing (compared with version {parent.version})")
            file = f"constitution-{new_v}.yaml"
            atomic_write(self.dir / file, text)
            if load_constitution(self.dir / file) != new:  # the file is what the index says it is
                raise RuntimeError(f"{self.dir / file}: written constitution does not read back equal")
            entry = ValueVersion(new_v, file, parent.version, author, reason.strip(), source, _now(), changes)
            self._write_index([*self.versions(), entry])
            return entry


def _set_version(text: str, version: str) -> str:
    """`text` with its top-level `version:` line set to `version` (comments elsewhere kept)."""
    line = f'version: "{version}"'
    out, n = re.subn(r"(?m)^version:.*$", line, text, count=1)
    return out if n else f"{line}\n{text}"


# -- edits ------------------------------------------------------------------------------------------


def apply_sets(c: Constitution, sets: Sequence[str], removes: Sequence[str] = ()) -> dict[str, Any]:
    """The constitution's data with `--set` / `--remove` edits applied (not yet validated).

    --set DIM.RUBRIC_ID=TEXT            change (or add) a rubric item, e.g. harmlessness.harm.no-uplift="..."
    --set DIM.description=TEXT          a dimension's description
    --set profiles.NAME.DIM=WEIGHT      a profile weight, e.g. profiles.default.harmlessness=3
    --set profiles.NAME.description=TEXT
    --remove DIM.RUBRIC_ID              drop a rubric item
    """
    data = c.model_dump(mode="json", exclude_defaults=True)
    for raw in sets:
        key, sep, value = raw.partition("=")
        if not sep:
            raise UserError(f"--set {raw!r}: write KEY=VALUE, e.g. profiles.default.harmlessness=3")
        _apply_one(data, key.strip(), value.strip().strip('"').strip("'"), raw)
    for raw in removes:
        dim, _, item = raw.strip().partition(".")
        rubric = data["dimensions"].get(dim, {}).get("rubric", [])
        kept = [r for r in rubric if r["id"] != item]
        if len(kept) == len(rubric):
            raise UserError(f"--remove {raw!r}: no rubric item {item!r} in dimension {dim!r}")
        data["dimensions"][dim]["rubric"] = kept
    return data


def _apply_one(data: dict[str, Any], key: str, value: str, raw: str) -> None:
    parts = key.split(".", 2) if key.startswith("profiles.") else key.split(".", 1)
    if parts[0] == "profiles":
        if len(parts) != 3:
            raise UserError(f"--set {raw!r}: write profiles.NAME.DIMENSION=WEIGHT or profiles.NAME.description=TEXT")
        prof = data["profiles"].setdefault(parts[1], {"weights": {}})
        if parts[2] == "description":
            prof["description"] = value
            return
        try:
            prof.setdefault("weights", {})[parts[2]] = float(value)
        except ValueError:
            raise UserError(f"--set {raw!r}: a weight must be a number, e.g. {key}=2.0") from None
        return
    if parts[0] in ("version", "name"):
        raise UserError(f"--set {raw!r}: the version is numbered for you; the name is kept")
    if len(parts) != 2:
        raise UserError(
            f"--set {raw!r}: write DIMENSION.RUBRIC_ID=TEXT (e.g. harmlessness.harm.no-uplift=...), "
            "DIMENSION.description=TEXT or profiles.NAME.DIMENSION=WEIGHT"
        )
    dim, item = parts
    if dim not in data["dimensions"]:
        raise UserError(f"--set {raw!r}: no dimension {dim!r}; known: {', '.join(data['dimensions'])}")
    if item == "description":
        data["dimensions"][dim]["description"] = value
        return
    rubric = data["dimensions"][dim]["rubric"]
    for r in rubric:
        if r["id"] == item:
            r["text"] = value
            return
    rubric.append({"id": item, "text": value})


def edited_text(c: Constitution, sets: Sequence[str], removes: Sequence[str] = ()) -> str:
    """YAML of `c` after the `--set` / `--remove` edits (validated later by ValueHistory.add_version)."""
    import yaml

    return yaml.safe_dump(apply_sets(c, sets, removes), sort_keys=False, allow_unicode=True, width=110)


def add_rubric_item(c: Constitution, dimension: str, item: RubricItem) -> str:
    """YAML of `c` with `item` appended to `dimension`'s rubric (used by accepted clarifications)."""
    dims = dict(c.dimensions)
    d = dims[dimension]
    dims[dimension] = d.model_copy(update={"rubric": (*d.rubric, item)})
    return dump_constitution(c.model_copy(update={"dimensions": dims}))


# -- diffs ------------------------------------------------------------------------------------------


def _threshold(weights: dict[str, float]) -> float:
    harm, help_ = weights.get("harmlessness", 0.0), weights.get("helpfulness", 0.0)
    return help_ / (harm + help_) if harm + help_ > 0 else float("nan")


def describe_changes(a: Constitution, b: Constitution) -> list[str]:
    """Readable lines for every value change from `a` to `b` (empty: same values).

    Rubric items added (+), removed (-), changed (~); dimensions and profiles added or removed;
    profile weights changed, with the unsafe threshold they imply."""
    out: list[str] = []
    for dim in sorted(set(a.dimensions) | set(b.dimensions)):
        da, db = a.dimensions.get(dim), b.dimensions.get(dim)
        if da is None or db is None:
            out.append(f"{'+' if da is None else '-'} dimension {dim}")
            continue
        if da.description != db.description:
            out.append(f"~ {dim}: description {da.description!r} -> {db.description!r}")
        ia, ib = {r.id: r for r in da.rubric}, {r.id: r for r in db.rubric}
        for rid in [r.id for r in da.rubric if r.id not in ib]:
            out.append(f"- {dim} rubric {rid}: {ia[rid].text!r}")
        for rid in [r.id for r in db.rubric if r.id not in ia]:
            ex = f" (examples: {len(ib[rid].examples)})" if ib[rid].examples else ""
            out.append(f"+ {dim} rubric {rid}: {ib[rid].text!r}{ex}")
        for rid in [r.id for r in da.rubric if r.id in ib]:
            if ia[rid].text != ib[rid].text:
                out.append(f"~ {dim} rubric {rid}: {ia[rid].text!r} -> {ib[rid].text!r}")
            if ia[rid].examples != ib[rid].examples:
                out.append(f"~ {dim} rubric {rid}: examples {len(ia[rid].examples)} -> {len(ib[rid].examples)}")
    for name in sorted(set(a.profiles) | set(b.profiles)):
        pa, pb = a.profiles.get(name), b.profiles.get(name)
        if pa is None or pb is None:
            out.append(f"{'+' if pa is None else '-'} profile {name}")
            continue
        if pa.description != pb.description:
            out.append(f"~ profile {name}: description {pa.description!r} -> {pb.description!r}")
        moved = [
            f"{d} {pa.weights.get(d, 0.0):g} -> {pb.weights.get(d, 0.0):g}"
            for d in sorted(set(pa.weights) | set(pb.weights))
            if pa.weights.get(d, 0.0) != pb.weights.get(d, 0.0)
        ]
        if moved:
            ta, tb = _threshold(pa.weights), _threshold(pb.weights)
            thr = (
                f" (unsafe threshold {ta:.2f} -> {tb:.2f})" if abs(ta - tb) > 1e-9 else " (unsafe threshold unchanged)"
            )
            out.append(f"~ profile {name} weights: {', '.join(moved)}{thr}")
    return out


def diff_versions(history: ValueHistory, a: str | None = None, b: str | None = None) -> tuple[str, str, list[str]]:
    """(A, B, change lines) between two versions; default: the current version's parent -> current."""
    vs = history.versions()
    if b is None:
        b = vs[-1].version
    if a is None:
        a = history.entry(b).parent or b
    return a, b, describe_changes(history.load(a), history.load(b))
