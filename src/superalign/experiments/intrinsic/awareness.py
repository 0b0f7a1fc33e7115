"""Self-awareness on multiple-choice questions: calibrated confidence, selective accuracy, "I'm not sure".

    probs = option_probs(backend, items)                       # softmax of option log-likelihoods
    conf, right = top_confidence(probs, items)                  # max prob, argmax == answer
    curve = selective_curve(conf, right); aurc(conf, right)     # accuracy vs coverage, area under risk
    answer_or_unsure(item, probs[i], threshold)                 # the option text, or UNSURE below threshold
    T = fit_temperature(logps, answers); probs = softmax_t(logps, T)
    examples = unsure_sft_examples(items, right)                # wrong -> "I'm not sure.", right -> answer

Conventions: a confidence is the probability the model gives its own answer (top-label); ECE is
critic/calibration.py's `expected_calibration_error` applied to (confidence, answer was right). The
*selective* answer abstains when its confidence is below a threshold; coverage is the answered share,
selective accuracy the accuracy on answered items. AURC is the mean selective risk (1 - accuracy) over
coverages 1/n, 2/n, ..., 1 when items are answered in order of falling confidence (lower is better;
ties count at their mean accuracy, so a constant confidence scores 1 - accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from superalign.backends.base import Trainable
from superalign.records import Chat, user_chat
from superalign.stats import softmax as softmax_t  # this module's name for it

UNSURE = "I'm not sure."


def mc_chat(item: Any) -> Chat:
    """The chat form of an MC item with its options listed (the format of plan.py's competence replay)."""
    return user_chat(f"{item.question}\nOptions: " + "; ".join(item.options))


def option_logps(backend: Any, items: Sequence[Any]) -> list[list[float]]:
    """Summed log P(" " + option | mc_prompt(item)) per option (evaluate.competence's scoring)."""
    from superalign.data.competence import mc_options, mc_prompt

    prefixes = [mc_prompt(it) for it in items]
    options = [mc_options(it) for it in items]
    return backend.score_options(prefixes, options)


def option_probs(backend: Any, items: Sequence[Any], temperature: float = 1.0) -> list[list[float]]:
    """The model's probability over each item's options (softmax of option log-likelihoods / T)."""
    return [softmax_t(lp, temperature) for lp in option_logps(backend, items)]


def top_confidence(probs: Sequence[Sequence[float]], answers: Sequence[int]) -> tuple[list[float], list[bool]]:
    """(max probability, argmax is the right answer) per item."""
    conf, right = [], []
    for p, a in zip(probs, answers, strict=True):
        k = max(range(len(p)), key=p.__getitem__)
        conf.append(float(p[k]))
        right.append(k == a)
    return conf, right


def fit_temperature(logps: Sequence[Sequence[float]], answers: Sequence[int]) -> float:
    """The temperature T minimising the NLL of the right options (scalar fit on log T, Brent's method)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        t = math.exp(log_t)
        total = 0.0
        for lp, a in zip(logps, answers, strict=True):
            z = [x / t for x in lp]
            m = max(z)
            total -= z[a] - m - math.log(sum(math.exp(x - m) for x in z))
        return total / max(1, len(answers))

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(50.0)), method="bounded")
    return round(float(math.exp(res.x)), 4)


def selective_curve(conf: Sequence[float], right: Sequence[bool]) -> list[tuple[float, float]]:
    """(coverage, accuracy on the answered items) answering the k most confident items, k = 1..n.

    Items with equal confidence cannot be told apart by the model, so within a tie the hits accrue at
    the tie's mean rate (the expectation over tie orders): a constant confidence gives a flat curve."""
    order = sorted(range(len(conf)), key=lambda i: -conf[i])
    out, hits, k = [], 0.0, 0
    while k < len(order):
        group = [i for i in order[k:] if conf[i] == conf[order[k]]]
        rate = sum(bool(right[i]) for i in group) / len(group)
        for _ in group:
            hits += rate
            k += 1
            out.append((k / len(order), hits / k))
    return out


def aurc(conf: Sequence[float], right: Sequence[bool]) -> float:
    """Area under the risk-coverage curve: mean of (1 - selective accuracy) over coverages k/n."""
    curve = selective_curve(conf, right)
    return round(sum(1.0 - acc for _, acc in curve) / len(curve), 4) if curve else float("nan")


def selective_at(conf: Sequence[float], right: Sequence[bool], threshold: float) -> dict[str, float]:
    """{coverage, selective_accuracy, abstained} when answering only items with confidence >= threshold."""
    answered = [r for c, r in zip(conf, right, strict=True) if c >= threshold]
    n = len(conf)
    return {
        "coverage": round(len(answered) / n, 4) if n else float("nan"),
        "selective_accuracy": round(sum(answered) / len(answered), 4) if answered else float("nan"),
        "abstained": n - len(answered),
    }


def answer_or_unsure(item: Any, probs: Sequence[float], threshold: float) -> str:
    """The most probable option's text, or UNSURE when its probability is below `threshold`."""
    k = max(range(len(probs)), key=probs.__getitem__)
    return item.options[k] if probs[k] >= threshold else UNSURE


def unsure_sft_examples(items: Sequence[Any], right: Sequence[bool]) -> list[tuple[Chat, str]]:
    """SFT data teaching abstention: an item the model got wrong -> UNSURE, one it got right -> the answer."""
    return [(mc_chat(it), it.options[it.answer] if r else UNSURE) for it, r in zip(items, right, strict=True)]


def chat_choice_probs(backend: Any, items: Sequence[Any]) -> list[list[float]]:
    """In the chat format, the model's distribution over [option_1, ..., option_k, UNSURE] as its reply.

    The last entry is P(the model says it is not sure). Used before and after unsure-SFT on the same
    items, so the two are measured identically."""
    replies = [[*it.options, UNSURE] for it in items]
    if isinstance(backend, Trainable):  # the chat prefix runs once per item
        scores = backend.score_options([backend.render(mc_chat(it)) for it in items], replies)
    else:
        flat = backend.logprobs(
            [mc_chat(it) for it, rs in zip(items, replies) for _ in rs], [r for rs in replies for r in rs]
        )
        scores, at = [], 0
        for rs in replies:
            scores.append(flat[at : at + len(rs)])
            at += len(rs)
    return [softmax_t(s) for s in scores]


def abstention_report(choice_probs: Sequence[Sequence[float]], answers: Sequence[int]) -> dict[str, Any]:
    """How the model behaves when it may say UNSURE (last entry of each distribution).

    Answered = the most probable reply is an option; its accuracy is `selective_accuracy`. `accuracy_all`
    forces an answer (argmax over the options only). Confidence for ECE/AURC = P(chosen option) among
    options, renormalised, times (1 - P(unsure)); `unsure_auroc` is how well P(unsure) ranks wrong
    answers above right ones (0.5 = no signal)."""
    from superalign.critic.calibration import expected_calibration_error

    conf, right, said_unsure, p_unsure = [], [], [], []
    for p, a in zip(choice_probs, answers, strict=True):
        opts, pu = p[:-1], p[-1]
        k = max(range(len(opts)), key=opts.__getitem__)
        conf.append(opts[k] / max(1e-12, sum(opts)) * (1.0 - pu))
        right.append(k == a)
        said_unsure.append(pu >= max(opts))
        p_unsure.append(pu)
    answered = [r for r, u in zip(right, said_unsure) if not u]
    n = len(right)
    return {
        "n": n,
        "unsure_rate": round(sum(said_unsure) / n, 4) if n else float("nan"),
        "coverage": round(len(answered) / n, 4) if n else float("nan"),
        "selective_accuracy": round(sum(answered) / len(answered), 4) if answered else float("nan"),
        "accuracy_all": round(sum(right) / n, 4) if n else float("nan"),
        "unsure_when_wrong": _rate([u for u, r in zip(said_unsure, right) if not r]),
        "unsure_when_right": _rate([u for u, r in zip(said_unsure, right) if r]),
        "unsure_auroc": auroc(p_unsure, [not r for r in right]),
        "ece": expected_calibration_error(conf, right),
        "aurc": aurc(conf, right),
        "conf": conf,
        "right": right,
    }


def _rate(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else float("nan")


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """P(score of a random positive > score of a random negative), ties 1/2; NaN with one class only."""
    pos = [s for s, y in zip(scores, positive) if y]
    neg = [s for s, y in zip(scores, positive) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return round(wins / (len(pos) * len(neg)), 4)
