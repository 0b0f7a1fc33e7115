"""`superalign experiment w2s`: weak-to-strong generalisation, measured as PGR. run.py is the experiment."""
