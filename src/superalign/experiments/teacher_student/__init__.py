"""`superalign experiment teacher-student`: iterative teacher -> student. run.py is the experiment;
generations.py the chain itself (a teacher labels, a student trains, the student teaches the next generation)."""
