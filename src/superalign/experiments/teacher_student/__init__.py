"""`superalign experiment teacher-student`: iterative teacher -> student. run.py is the experiment."""
