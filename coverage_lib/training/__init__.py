"""Layer 5, training: the trainer's configuration and rules, the training loop in named steps,
checkpoints (loaded with ``weights_only=True``), the Mamba-3's physics loss, and the training
curves."""
