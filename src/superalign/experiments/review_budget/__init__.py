"""The review-budget experiment: how much does a small human budget buy, routed by uncertainty or at random?
run.py is the experiment, `python -m superalign.experiments.review_budget.run [--uncalibrated] [--key=value ...]`
(docs/review.md; it prints a table and is not one of `superalign experiment NAME`'s); oracle.py the simulated
human reviewer it routes to."""
