"""`superalign experiment self-enhance`: the learner critiques, revises and rewards itself. run.py is the
experiment; self_feedback.py the self-critique, self-revision and self-reward steps it runs."""
