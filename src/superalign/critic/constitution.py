"""The constitution: versioned value dimensions with rubrics, and value profiles that weigh them.

    policy = load_policy()                                   # shipped file, "default" profile
    policy = load_policy("my_values.yaml", "strict-child-safety")

A profile's weights change the verdict through one rule (see data/constitution.yaml):
unsafe iff P(unsafe) >= w_helpfulness / (w_harmlessness + w_helpfulness). Errors in a user's file
name the file, the line and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from superalign.errors import UserError

DEFAULT_CONSTITUTION = Path(__file__).resolve().parent.parent / "data" / "constitution.yaml"
REQUIRED_DIMENSIONS = ("harmlessness", "helpfulness", "honesty", "empathy")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RubricItem(_Frozen):
    id: str = Field(
        ...,
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$",
        description="Stable id quoted in explanations, '<dimension-prefix>.<item>', e.g. harm.no-uplift.",
    )
    text: str = Field(..., min_length=5, description="What a good response does, in one sentence.")
    examples: tuple[str, ...] = Field(
        (), max_length=3, description="Optional worked cases (e.g. from an accepted value clarification)."
    )


class Dimension(_Frozen):
    description: str = Field(..., min_length=5, description="What this value protects.")
    rubric: tuple[RubricItem, ...] = Field(..., min_length=1, description="Rubric items of this dimension.")


class Profile(_Frozen):
    description: str = Field("", description="Who this profile is for.")
    weights: dict[str, float] = Field(..., description="Weight (> 0) per dimension; missing dimensions weigh 0.")

    @field_validator("weights")
    @classmethod
    def _positive(cls, w: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in w.items() if v < 0]
        if bad:
            raise ValueError(f"weights must be >= 0 (got {', '.join(f'{k}={w[k]}' for k in bad)})")
        if w.get("harmlessness", 0) + w.get("helpfulness", 0) <= 0:
            raise ValueError("harmlessness + helpfulness weights must be > 0 (they set the unsafe threshold)")
        return w


class Constitution(_Frozen):
    version: str = Field(..., min_length=1, description="Recorded in every verdict; bump it when values change.")
    name: str = Field("constitution", description="Short name, recorded with the version.")
    dimensions: dict[str, Dimension] = Field(..., description="Value dimensions, each with a rubric.")
    profiles: dict[str, Profile] = Field(..., min_length=1, description="Value profiles (weights per dimension).")

    @model_validator(mode="after")
    def _consistent(self) -> Constitution:
        missing = [d for d in REQUIRED_DIMENSIONS if d not in self.dimensions]
        if missing:
            raise ValueError(f"missing dimensions: {', '.join(missing)} (required: {', '.join(REQUIRED_DIMENSIONS)})")
        ids = [item.id for d in self.dimensions.values() for item in d.rubric]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rubric ids: {', '.join(dupes)}")
        for pname, p in self.profiles.items():
            unknown = [k for k in p.weights if k not in self.dimensions]
            if unknown:
                raise ValueError(
                    f"profile {pname!r} weighs unknown dimensions {unknown}; known: {', '.join(self.dimensions)}"
                )
        return self

    def rubric_ids(self) -> set[str]:
        return {item.id for d in self.dimensions.values() for item in d.rubric}

    def rubric_text(self, item_id: str) -> str:
        for d in self.dimensions.values():
            for item in d.rubric:
                if item.id == item_id:
                    return item.text
        raise KeyError(item_id)


@dataclass(frozen=True)
class Policy:
    """A constitution with one profile chosen: what a critic applies to every verdict."""

    constitution: Constitution
    profile: str = "default"

    def __post_init__(self) -> None:
        if self.profile not in self.constitution.profiles:
            raise UserError(
                f"profile {self.profile!r} not in constitution {self.constitution.name!r}; "
                f"choose one of: {', '.join(self.constitution.profiles)}"
            )

    @property
    def weights(self) -> dict[str, float]:
        return self.constitution.profiles[self.profile].weights

    @property
    def version(self) -> str:
        """e.g. 'superalign-default@1.0' (recorded in Verdict.constitution)."""
        return f"{self.constitution.name}@{self.constitution.version}"

    @property
    def unsafe_threshold(self) -> float:
        """P(unsafe) at or above which a response is unsafe: w_help / (w_harm + w_help)."""
        w = self.weights
        harm, help_ = w.get("harmlessness", 0.0), w.get("helpfulness", 0.0)
        return help_ / (harm + help_)

    def overall(self, dimensions: dict[str, float]) -> float:
        """Weighted mean of the dimension scores this profile weighs (1 = good)."""
        pairs = [(w, dimensions[d]) for d, w in self.weights.items() if d in dimensions and w > 0]
        total = sum(w for w, _ in pairs)
        return round(sum(w * x for w, x in pairs) / total, 4) if total else 0.0


def load_constitution(path: str | Path | None = None) -> Constitution:
    """The constitution at `path` (default: the shipped data/constitution.yaml), validated.

    Raises UserError naming file:line and what to write instead.
    """
    from superalign.config import parse_yaml, yaml_line
    from superalign.user_text import read_user_text

    p = Path(path) if path is not None else DEFAULT_CONSTITUTION
    if not p.is_file():
        raise UserError(f"{p}: constitution file not found (copy {DEFAULT_CONSTITUTION} and edit it)")
    node, data = parse_yaml(read_user_text(p), p)
    if not isinstance(data, dict):
        raise UserError(f"{p}:1: expected a mapping with version, dimensions and profiles")
    try:
        return Constitution.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = yaml_line(node, loc) or 1
            dotted = ".".join(str(x) for x in loc) or "(top level)"
            msgs.append(f"{p}:{line}: {dotted}: {err['msg'].removeprefix('Value error, ')}")
        raise UserError("bad constitution: " + "; ".join(msgs)) from None


def dump_constitution(c: Constitution) -> str:
    """`c` as YAML that load_constitution reads back equal (defaults left out, key order kept)."""
    import yaml

    return yaml.safe_dump(
        c.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True, width=110
    )


def load_policy(path: str | Path | None = None, profile: str = "default") -> Policy:
    """The constitution at `path` (default: shipped) with `profile` chosen."""
    return Policy(load_constitution(path), profile)
