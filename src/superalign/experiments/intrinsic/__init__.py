"""`superalign experiment intrinsic`: self-reflection, self-awareness and empathy. run.py is the experiment,
report.py writes its results.md and plots."""
