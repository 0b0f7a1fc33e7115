"""`superalign experiment intrinsic`: self-reflection, self-awareness and empathy. run.py is the experiment,
report.py writes its results.md and plots; reflect.py (reflect-then-answer), awareness.py (confidence, "I'm not
sure") and empathy.py (stakeholder score) are the behaviours it trains and measures."""
