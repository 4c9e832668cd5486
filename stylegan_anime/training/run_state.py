"""A trainer's whole state as a checkpoint holds it, and back: what a resumed run needs to equal an
uninterrupted one (networks, optimisers, scalers, recipe and augmentation state, counters, every random stream
and the grids' fixed latents). Trainer.state_dict / load_state_dict call these.
"""
from __future__ import annotations

import torch


def train_seconds(progress: dict) -> float:
    """A checkpoint's training seconds; checkpoints before train_s kept `wall_s` (evaluation included)."""
    return float(progress.get("train_s", progress.get("wall_s", 0.0)))


def trainer_state(t) -> dict:
    """Trainer `t`'s state, as plain dicts and tensors (what save_checkpoint writes)."""
    return {
        "config": t.cfg.to_dict(),
        "nets": {**{k: m.state_dict() for k, m in t.recipe.nets.items()}, "G_ema": t.G_ema.state_dict()},
        "opts": {k: o.state_dict() for k, o in t.recipe.opts.items()},
        "scalers": {k: s.state_dict() for k, s in t.scalers.items()},
        "recipe": t.recipe.state_dict(),
        "augment": None if t.augment is None else t.augment.state_dict(),
        "progress": {"nimg": t.nimg, "iteration": t.iteration, "skipped": t.skipped,
                     "train_s": t.train_s, "maintenance_s": t.maintenance_s, "cpu_s": t.cpu_s},
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "sampler": t.sampler.state_dict(),
            "z": t.z_gen.get_state(),
        },
        "fixed": {"z": t.fixed_z, **({} if t.fixed_labels is None else {"labels": t.fixed_labels})},
    }


def load_trainer_state(t, state: dict) -> None:
    """Restore a checkpoint into trainer `t`. Networks are required; optimiser, scaler, RNG, sampler and grid
    states are restored when present (an imported network has only networks: it starts fresh optimisers)."""
    for k, m in t.recipe.nets.items():
        m.load_state_dict(state["nets"][k])
    t.G_ema.load_state_dict(state["nets"]["G_ema"])
    for k, o in t.recipe.opts.items():
        if k in state.get("opts", {}):
            o.load_state_dict(state["opts"][k])
    for k, s in t.scalers.items():
        if state.get("scalers", {}).get(k):
            s.load_state_dict(state["scalers"][k])
    t.recipe.load_state_dict(state.get("recipe", {}))
    if t.augment is not None and state.get("augment"):
        t.augment.load_state_dict(state["augment"])
    prog = state["progress"]
    t.nimg, t.iteration, t.skipped = int(prog["nimg"]), int(prog["iteration"]), int(prog["skipped"])
    t.train_s = train_seconds(prog)
    t.maintenance_s, t.cpu_s = float(prog.get("maintenance_s", 0.0)), float(prog.get("cpu_s", 0.0))
    rng = state.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and rng.get("cuda"):
        torch.cuda.set_rng_state_all(rng["cuda"][: torch.cuda.device_count()])
    if "sampler" in rng:
        t.sampler.load_state_dict(rng["sampler"])
    if "z" in rng:
        t.z_gen.set_state(rng["z"])
    if t.dist.active:  # per-rank streams continue from the saved one, shifted by rank
        torch.manual_seed(int(torch.randint(2**62, [])) + t.dist.rank)
    if "fixed" in state:
        t.fixed_z = state["fixed"]["z"]
        t.fixed_labels = state["fixed"].get("labels", t.fixed_labels)
