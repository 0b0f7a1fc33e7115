"""The learner: drawing samples and revisions, turning verdicts into preference pairs, DPO training."""
