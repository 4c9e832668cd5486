"""The `stylegan-anime` command (a package: one module per command group)."""
from .train import cli, main  # noqa: F401
