"""Choose the content critic's settings on the gold *dev* split only: grouped k-fold CV over dev prompt groups.

    python scripts/gold/dev_cv.py [--gold FILE] [--pyrit W] [--folds 5] [--no-fit-kind trained] [--out F.json]

Each fold fits the heads on the other dev folds (their synthetic variants too; PyRIT's sets with --pyrit)
and judges the held-out dev fold with the dataset label given. Prints accuracy overall and per kind, and
unsafe recall / precision. `--no-fit-kind K` scores rows of kind K but never fits on them: the same folds,
so a recipe with and without those rows is compared on the same held-out rows. The test split is never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from superalign.critic.classifier import fit_classifier_cached
from superalign.critic.content import ContentCritic, ContentFeatures, fit_content_heads, training_rows
from superalign.critic.critic import JudgeItem
from superalign.data.gold import load_gold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold", type=Path, default=None, help="one gold file (default: every file of the version)")
    ap.add_argument("--no-fit-kind", action="append", default=[], help="score rows of this kind, never fit on them")
    ap.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    ap.add_argument("--trained-weight", type=float, default=None, help="weight of `trained` rows (default: shipped)")
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
        fit = [dev[i] for i in tr if dev[i].kind not in a.no_fit_kind]
        heads = fit_content_heads(
            training_rows(fit, pyrit=a.pyrit > 0, pyrit_weight=a.pyrit, trained_weight=a.trained_weight), feats
        )
        critic = ContentCritic(heads, clf)
        vs = critic.judge(
            [JudgeItem(dev[i].id, dev[i].prompt, dev[i].response, None if a.no_label else dev[i].harmful) for i in te]
        )
        pred.update({dev[i].id: v.unsafe for i, v in zip(te, vs)})
    ok = {r.id: pred[r.id] == r.unsafe for r in dev}

    def block(rs: list) -> dict:
        pos = [r for r in rs if r.unsafe]
        called = [r for r in rs if pred[r.id]]
        return {
            "n": len(rs),
            "accuracy": round(sum(ok[r.id] for r in rs) / len(rs), 4),
            "unsafe_recall": round(sum(bool(pred[r.id]) for r in pos) / len(pos), 4) if pos else None,
            "unsafe_precision": round(sum(r.unsafe for r in called) / len(called), 4) if called else None,
        }

    result = {"all": block(dev)} | {k: block([r for r in dev if r.kind == k]) for k in sorted({r.kind for r in dev})}
    result["not " + "/".join(a.no_fit_kind or ["-"])] = block([r for r in dev if r.kind not in a.no_fit_kind])
    print(f"dev CV unsafe accuracy {result['all']['accuracy']:.3f} (n={len(dev)})")
    for k, b in result.items():
        print(f"  {k:16s} n={b['n']:3d} acc={b['accuracy']:.3f} rec={b['unsafe_recall']} prec={b['unsafe_precision']}")
    if a.out:
        a.out.write_text(json.dumps({"args": vars(a) | {"gold": str(a.gold), "out": str(a.out)}, **result}, indent=2))
    for r in dev:
        if not ok[r.id]:
            print(f"  MISS gold={int(r.unsafe)} {r.kind:9s} P: {r.objective[:70]!r} R: {r.response[:140]!r}")


if __name__ == "__main__":
    main()
