"""Training engines: pretraining, fine-tuning, distributed set-up, checkpoints."""
