"""`superalign experiment sandwich`: sandwiching with a simulated non-expert. run.py is the experiment."""
