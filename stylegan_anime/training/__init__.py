"""The shared trainer: recipes, the training loop, checkpoints and logging."""
