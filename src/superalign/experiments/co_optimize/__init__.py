"""`superalign experiment co-optimize`: competence × conformity schedules and the search over learning
directions. run.py is the experiment."""
