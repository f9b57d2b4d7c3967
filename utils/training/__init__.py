"""Training: the shared loop (train.py), the one training entry (run.py), checkpoints and torchrun."""
