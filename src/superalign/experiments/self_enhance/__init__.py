"""`superalign experiment self-enhance`: the learner critiques, revises and rewards itself. run.py is the
experiment."""
