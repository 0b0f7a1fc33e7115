"""`superalign experiment w2s-probe`: weak-to-strong with a linear-probe student. run.py is the experiment."""
