"""The debate experiment's settings and presets (pilot, quick, full)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DebateConfig(BaseModel):
    """One preset of the experiment. Every preset runs the pilot gates first and stops if one fails."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Literal["pilot", "protocols"] = Field(
        "protocols", description="pilot: the information gates only | protocols: the gates, then the protocols."
    )
    pilot_items: int = Field(
        200, ge=1, description="Items the gates are measured on: the first of the fixed shuffle of SciQ passage items."
    )
    items: int = Field(
        200, ge=0, description="Items the protocols run on, a prefix of the same shuffle (0 = all 887 with a passage)."
    )
    min_gain_passage: float = Field(
        0.15, ge=0, description="Gate 1: passage-reading judge minus naive judge accuracy must be >= this."
    )
    min_gain_masked: float = Field(
        0.10, ge=0, description="Gate 2: the same with both options masked in the passage must be >= this."
    )
    mask_token: str = Field("___", min_length=1, description="What replaces an option string (and its stems).")
    text_judge: bool = Field(
        True, description="Also score the reply as the option's text (a diagnostic beside the letter judge; no gate)."
    )
    cloze_judge: bool = Field(
        True,
        description=(
            "Also score a plain-text cloze judge (passage, question, 'Answer:' + each option; lm-eval's SciQ format): "
            "a diagnostic, no gate."
        ),
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Judge weights on the CPU.")
    batch_size: int = Field(16, ge=1, description="Prompts per forward pass (score_options runs half as many rows).")
    bootstrap: int = Field(2000, ge=100, description="Bootstrap resamples of items for every CI.")


PRESETS = {
    "pilot": DebateConfig(stage="pilot"),
    "quick": DebateConfig(stage="protocols", items=200),
    "full": DebateConfig(stage="protocols", items=0),
}


def preset_name(cfg: DebateConfig) -> str:
    """The preset `cfg` equals, else "custom"."""
    return next((name for name, p in PRESETS.items() if p == cfg), "custom")
