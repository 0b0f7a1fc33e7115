"""results.md and the figure (held-out gain against the ranker's measured pick accuracy) of judge-quality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from superalign.experiments.common import markdown_table, write_results
from superalign.experiments.judge_quality.config import JudgeQualityConfig


def ci(cell: dict[str, Any] | None, key: str = "mean") -> str:
    """`value [lo, hi]` of a metrics cell."""
    if not cell:
        return "–"
    return f"{cell[key]:.3f} [{cell['ci'][0]:.3f}, {cell['ci'][1]:.3f}]"


def gate_rows(gates: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [g["name"], f"{g['value']:.3f} [{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]", "pass" if g["passed"] else "FAIL"]
        for g in gates
    ]


def arm_table(metrics: dict[str, Any]) -> str:
    rows = []
    for name, a in metrics["arms"].items():
        rows.append(
            [
                name,
                ci(a["pick_accuracy"]),
                f"{a['pair_accuracy']:.3f}",
                ci(a["test_accuracy"]),
                ci(a["gain"], "diff"),
                ci(a.get("gain_over_random"), "diff"),
                a["sample_distinct"],
                a["greedy_distinct"],
                a["greedy_words"],
            ]
        )
    b = metrics["base"]
    rows.append(
        [
            "(untrained)",
            "–",
            "–",
            ci(b["test_accuracy"]),
            "–",
            "–",
            b["sample_distinct"],
            b["greedy_distinct"],
            b["greedy_words"],
        ]
    )
    return markdown_table(
        [
            "ranker",
            "pick accuracy [Wilson]",
            "pair accuracy",
            "test accuracy [CI]",
            "gain over untrained [paired CI]",
            "gain over random arm [paired CI]",
            "distinct of k samples",
            "distinct greedy",
            "greedy words",
        ],
        rows,
    )


def plot_gain_vs_accuracy(path: Path, metrics: dict[str, Any]) -> Path:
    """Each arm: x = pick accuracy (Wilson CI), y = gain over the untrained model (paired bootstrap CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, a in metrics["arms"].items():
        p, g = a["pick_accuracy"], a["gain"]
        if not p:
            continue
        ax.errorbar(
            p["mean"],
            g["diff"],
            xerr=[[p["mean"] - p["ci"][0]], [p["ci"][1] - p["mean"]]],
            yerr=[[g["diff"] - g["ci"][0]], [g["ci"][1] - g["diff"]]],
            fmt="o",
            capsize=3,
            label=name,
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("ranker's pick accuracy where the k answers disagree (95 % Wilson)")
    ax.set_ylabel("held-out accuracy gain (95 % paired bootstrap)")
    ax.set_title("Self-enhancement: gain vs judge quality")
    if ax.get_legend_handles_labels()[0]:  # no arm has a pick accuracy when no training item's answers disagree
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def results_markdown(metrics: dict[str, Any], cfg: JudgeQualityConfig) -> list[str]:
    m, g = metrics["machine"], metrics["gates"]
    ph, ex = g["match"]["phrase"], g["match"]["exact"]
    head = (
        f"Preset `{metrics['preset']}` (stage `{cfg.stage}`), model `{metrics['learner']}` (float32). Items: SciQ "
        f"validation questions with a support passage, one fixed shuffle cut into disjoint blocks (dev "
        f"{metrics['split']['dev']}, test {metrics['split']['test']}, train {metrics['split']['train']}). The model "
        f"reads the passage and writes a short answer (greedy, or {cfg.samples} samples at temperature "
        f"{cfg.temperature}, top-k {cfg.top_k}, {cfg.max_new_tokens} tokens); an answer is right when it contains the "
        "reference answer as a whole phrase after normalisation. CIs: Wilson for rates, 95 % percentile bootstrap "
        f"over items ({cfg.bootstrap} resamples, paired for differences). Machine: {m.get('model_name')} (amx "
        f"{m.get('amx')}, avx512 {m.get('avx512')}, {m.get('cpus')} CPUs); commit {m.get('commit')}"
        f"{' + uncommitted changes' if m.get('dirty') else ''}. Took {metrics['minutes']} min wall, "
        f"{metrics['cpu_seconds'] / 60:.1f} min CPU."
        + (f" Not built: {metrics['not_built']}." if metrics.get("not_built") else "")
    )
    dev = markdown_table(
        [
            "match",
            "greedy [Wilson]",
            "single sample [CI]",
            f"best-of-{cfg.samples} [Wilson]",
            "best − single [paired CI]",
            "items where samples disagree",
        ],
        [
            [
                name,
                ci(c["greedy"]),
                ci(c["single"]),
                ci(c["best_of_k"]),
                ci(c["best_minus_single"], "diff"),
                c["decidable"],
            ]
            for name, c in (("phrase (gated)", ph), ("exact (diagnostic)", ex))
        ],
    )
    gates = gate_rows(g["gates"])
    if metrics.get("positive_control"):
        gates += gate_rows([metrics["positive_control"]])
    verdict = f"**Stopped: {metrics['stopped']}.**" if metrics.get("stopped") else "**Dev gates pass; arms trained.**"
    control = metrics.get("positive_control")
    if control and not control["passed"]:
        verdict += (
            " **The positive control fails**: the oracle arm's gain is not shown (its interval reaches 0 or below), so "
            "this run cannot say whether a better ranker helps; the gain-vs-accuracy figure is read as no effect."
        )
    sections = [
        head,
        "## Gates\n\n" + markdown_table(["gate", "value [95 % CI]", "result"], gates) + "\n\n" + verdict,
        "## Dev items: greedy, single sample, best-of-k\n\n" + dev,
    ]
    if "arms" in metrics:
        t = metrics["train_answers"]
        sections.append(
            "## Arms: one LoRA SFT per ranker on the same training answers\n\n"
            f"Training answers: best-of-{cfg.samples} {ci(t['best_of_k'])}, single {t['single']:.3f}; the samples "
            f"disagree on {t['decidable']} of {metrics['split']['train']} items (only there can a ranker choose). "
            f"Each arm: LoRA r={cfg.lora_r}, lr {cfg.lr}, {cfg.epochs} epochs, batch {cfg.batch_size}, on every "
            f"training item's picked answer; {_seeds(cfg)}, per-item correctness averaged over seeds. "
            "Pick accuracy: share of the disagreeing items where the pick is right; pair accuracy: share of (right, "
            "wrong) answer pairs the ranker orders right (ties 1/2). Diversity: distinct normalised answers among "
            f"{cfg.samples} samples on the first {cfg.diversity_items} test items; distinct greedy answers over the "
            "test items.\n\n" + arm_table(metrics) + "\n\n![gain vs pick accuracy](gain_vs_accuracy.png)"
        )
    return sections


def write_outputs(out: Path, metrics: dict[str, Any], cfg: JudgeQualityConfig) -> None:
    write_results(out, "judge-quality: self-enhancement as a study of judge quality", results_markdown(metrics, cfg))
    if metrics.get("arms"):
        plot_gain_vs_accuracy(Path(out) / "gain_vs_accuracy.png", metrics)


def _seeds(cfg: Any) -> str:
    """ "2 seeds (0-1)", "seed 1"…: which seeds the arms ran."""
    first, n = cfg.first_seed, cfg.seeds
    return f"seed {first}" if n == 1 else f"{n} seeds ({first}-{first + n - 1})"
