"""`superalign experiment co-optimize`: competence × conformity training. run.py is the experiment;
schedules.py the schedules with equal budgets, search.py the search over learning directions."""
