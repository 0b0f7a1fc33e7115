"""superalign: an Attacker -> Learner -> Critic loop for superalignment research on real models."""

__version__ = "0.1.0"
