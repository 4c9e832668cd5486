"""Which way is better for a metric, by its name (metrics.jsonl keys, TensorBoard tags)."""
from __future__ import annotations

HIGHER_IS_BETTER = ("afd", "is", "precision", "recall", "pr_", "acc", "c2st_loss")  # c2st (accuracy): lower
LOWER_IS_BETTER = ("fid", "kid", "swd", "ppl")


def lower_is_better(metric: str) -> bool:
    """'swd/64' -> True, 'afd' -> False; unknown names count as lower-is-better (distances)."""
    name = metric.split("/")[-1].lower()
    if name.startswith(LOWER_IS_BETTER):
        return True
    if name.startswith(HIGHER_IS_BETTER):
        return False
    return True
