"""`superalign experiment judge-quality`: self-enhancement as a study of judge quality (SciQ short answers).

The model reads a SciQ support passage and writes a short answer; it samples k answers per training item once,
and each ranker (an oracle, oracles with known flip rates, self-consistency, mean log-probability, the model's own
yes/no verdict, random) picks the best of those same answers for one LoRA SFT arm. The result is each arm's
held-out accuracy gain against its ranker's measured pick accuracy. Modules: `config` (presets pilot / quick /
full), `answers` (items, the disjoint dev / test / train blocks, the prompt, answer matching), `sampling` (k
answers from one prefill), `rankers`, `run` (the module `superalign experiment judge-quality` loads), `report`.

Every preset first measures the gates on the dev items — greedy accuracy in [0.2, 0.8], best-of-k >= single
sample + 0.10 — and stops when one fails; the oracle arm's gain is the third gate (positive control).
"""

from superalign.experiments.judge_quality.config import PRESETS, JudgeQualityConfig

__all__ = ["PRESETS", "JudgeQualityConfig"]
