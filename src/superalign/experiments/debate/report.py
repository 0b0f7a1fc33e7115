"""results.md of the debate experiment: the gates with pass/fail, the judge conditions, the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from superalign.experiments.common import markdown_table, write_results
from superalign.experiments.debate.config import DebateConfig

CONDITION_TEXT = {
    "naive": "naive judge (question only)",
    "passage": "passage-reading judge (ceiling)",
    "passage_masked": "passage-reading judge, options masked",
}


def ci_text(value: float, ci: list[float], signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"{format(value, f)} [{format(ci[0], f)}, {format(ci[1], f)}]"


def gate_table(gates: list[dict[str, Any]]) -> str:
    return markdown_table(
        ["gate", "accuracy gain [95 % CI]", "threshold", "result", "CI above the threshold?"],
        [
            [
                g["name"],
                ci_text(g["gain"], g["ci"], True),
                f"≥ {g['threshold']:.2f}",
                "**pass**" if g["passed"] else "**FAIL**",
                "yes" if g["ci_clears"] else "no",
            ]
            for g in gates
        ],
    )


def condition_table(conditions: dict[str, Any]) -> str:
    rows = []
    for c, s in conditions.items():
        rows.append(
            [
                CONDITION_TEXT.get(c, c),
                ci_text(s["accuracy"]["mean"], s["accuracy"]["ci"]),
                ci_text(s["p_correct"]["mean"], s["p_correct"]["ci"]),
                f"{s['order_accuracy'][0]:.3f} / {s['order_accuracy'][1]:.3f}",
                f"{s['p_says_a']:.3f}",
            ]
        )
    return markdown_table(
        [
            "condition",
            "accuracy [95 % CI]",
            "mean P(correct) [95 % CI]",
            "accuracy: correct = A / = B",
            "mean P(says A)",
        ],
        rows,
    )


def results_markdown(metrics: dict[str, Any], cfg: DebateConfig) -> list[str]:
    """The sections of results.md."""
    m, g, d = metrics["machine"], metrics["gates"], metrics["data"]
    head = (
        f"Preset `{metrics['preset']}` (stage `{cfg.stage}`), judge `{metrics['learner']}` ({cfg.dtype}). "
        f"Gates on the first {d['items']} SciQ validation items with a support passage (fixed shuffle); each item "
        "is a binary choice (the correct answer and one distractor) asked in both answer orders; the judge's "
        "P(correct) is the softmax over the letters ' A' / ' B' after 'Answer:', averaged over the two orders; an "
        f"item counts as right when that mean is above 0.5. CIs: 95 % percentile bootstrap, {cfg.bootstrap} "
        "resamples of items, paired for differences. A gate passes when the point gain reaches its threshold. "
        f"Machine: {m.get('model_name')} (amx {m.get('amx')}, avx512 {m.get('avx512')}, {m.get('cpus')} CPUs); "
        f"commit {m.get('commit')}{' + uncommitted changes' if m.get('dirty') else ''}. Took "
        f"{metrics['minutes']} min wall, {metrics['cpu_seconds'] / 60:.1f} min CPU; {metrics['model_prompts_scored']} "
        "prompts ran through the model (the rest came from the cache)."
    )
    verdict = ("**Both gates pass.**" if metrics["gates_passed"] else f"**Stopped: {metrics['stopped']}.**") + (
        " " + metrics["stopped"] + "." if metrics["gates_passed"] and metrics.get("stopped") else ""
    )
    sections = [
        head,
        "## Pilot gates (letter judge)\n\n" + gate_table(g["gates"]) + "\n\n" + verdict,
        "## Judge accuracy per condition (letter judge)\n\n" + condition_table(g["conditions"]),
    ]
    if g.get("text_judge"):
        t = g["text_judge"]
        sections.append(
            "## Diagnostic: the same prompts, the reply scored as the option's text (no gate)\n\n"
            "The judge's reply after 'Answer:' scored as ' ' + the option (summed log-probability) instead of its "
            "letter: whether a failure is the letter format's or the information's.\n\n"
            + condition_table(t["conditions"])
            + "\n\n"
            + gate_table(t["gates"])
        )
    if g.get("cloze_judge"):
        t = g["cloze_judge"]
        sections.append(
            "## Diagnostic: a plain-text cloze judge (no gate)\n\n"
            "lm-evaluation-harness's SciQ format without the chat template: `{passage}\\nQuestion: {question}\\n"
            "Answer:` and each option scored as the continuation (summed log-probability, softmax over the two); "
            "the options are never listed, so there is no answer order (both order columns are the same). Not the "
            "pre-registered judge: it says whether the model can use the passage at all when it is asked this way."
            "\n\n" + condition_table(t["conditions"]) + "\n\n" + gate_table(t["gates"])
        )
    sections.append(
        "## Data\n\n"
        f"{d['items']} items; the passage names the correct answer in {d['answer_in_passage']:.1%} of them and the "
        f"distractor in {d['distractor_in_passage']:.1%}; after masking, {d['option_left_after_mask']} passages "
        f"still name an option as a whole string. Passages: {d['mean_passage_words']} words, "
        f"{d['mean_sentences']} sentences on average. Mask: `{cfg.mask_token}` replaces each option, every word "
        "sharing a stem with an option's content words, and every number in an option."
    )
    return sections


def write_outputs(out: Path, metrics: dict[str, Any], cfg: DebateConfig) -> None:
    write_results(
        out, "debate: scalable oversight with a weak judge on hidden passages", results_markdown(metrics, cfg)
    )
