"""`superalign experiment w2s`: weak-to-strong generalisation, measured as PGR. run.py is the experiment;
finetune.py the fine-tuned student (top blocks of SmolLM2 + a head), loss.py the head's training with plain
cross-entropy or the auxiliary confidence loss."""
