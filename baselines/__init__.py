"""Baseline GANs, each a recipe for the shared trainer."""
