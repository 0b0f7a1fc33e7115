"""`superalign experiment noisy-labels`: DPO vs rDPO vs cDPO under label noise. run.py is the experiment."""
