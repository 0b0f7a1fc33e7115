"""`superalign experiment w2s-probe`: weak-to-strong with a linear-probe student. run.py is the experiment;
layer_features.py the per-layer hidden states of SmolLM2 it probes (one forward pass, cached)."""
