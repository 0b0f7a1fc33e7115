"""Choose the content critic's settings on the gold *dev* split only: grouped k-fold CV over dev prompt groups.

    python scripts/gold/dev_cv.py [--gold FILE] [--pyrit] [--folds 5]

Each fold fits the heads on the other dev folds (their synthetic variants too; PyRIT's sets with --pyrit)
and judges the held-out dev fold with the dataset label given. Prints accuracy overall and per kind.
The test split is never read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superalign.critic.classifier import fit_classifier_cached
from superalign.critic.content import ContentCritic, ContentFeatures, fit_content_heads, training_rows
from superalign.critic.critic import JudgeItem
from superalign.data.gold import GOLD_FILE, load_gold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold", type=Path, default=GOLD_FILE)
    ap.add_argument("--pyrit", type=float, default=0.0, help="add PyRIT's labelled sets at this row weight")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-label", action="store_true", help="judge without the dataset's harmful label")
    ap.add_argument("--layers", type=int, default=0, help="transformer blocks the features read (0 = the default)")
    ap.add_argument("--blocks", default="whole,content,hand", help="feature blocks the heads see")
    ap.add_argument("--backbone", default="", help='features from: "" = SmolLM2, gemma, both, or a model directory')
    a = ap.parse_args()
    from sklearn.model_selection import GroupKFold

    dev = load_gold("dev", a.gold)
    clf = fit_classifier_cached()
    feats = ContentFeatures()
    import dataclasses

    gemma = dataclasses.replace(feats.pair, model_dir="gemma", layers=18)
    if a.backbone == "both":  # SmolLM2's features with Gemma-3-270M's appended
        feats = ContentFeatures(feats.pair, second=gemma)
    elif a.backbone:
        feats = ContentFeatures(dataclasses.replace(feats.pair, model_dir=a.backbone, layers=a.layers or 18))
    if a.layers:
        feats = ContentFeatures(dataclasses.replace(feats.pair, layers=a.layers))
    feats = ContentFeatures(feats.pair, tuple(a.blocks.split(",")), feats.second)
    pred: dict[str, bool | None] = {}
    for tr, te in GroupKFold(n_splits=a.folds).split(dev, groups=[r.group for r in dev]):
        heads = fit_content_heads(training_rows([dev[i] for i in tr], pyrit=a.pyrit > 0, pyrit_weight=a.pyrit), feats)
        critic = ContentCritic(heads, clf)
        vs = critic.judge(
            [JudgeItem(dev[i].id, dev[i].prompt, dev[i].response, None if a.no_label else dev[i].harmful) for i in te]
        )
        pred.update({dev[i].id: v.unsafe for i, v in zip(te, vs)})
    ok = {r.id: pred[r.id] == r.unsafe for r in dev}
    print(f"dev CV unsafe accuracy {sum(ok.values()) / len(dev):.3f} (n={len(dev)})")
    for k in sorted({r.kind for r in dev}):
        rs = [r for r in dev if r.kind == k]
        print(f"  {k:12s} n={len(rs):3d} acc={sum(ok[r.id] for r in rs) / len(rs):.3f}")
    for r in dev:
        if not ok[r.id]:
            print(f"  MISS gold={int(r.unsafe)} {r.kind:9s} P: {r.objective[:70]!r} R: {r.response[:140]!r}")


if __name__ == "__main__":
    main()
