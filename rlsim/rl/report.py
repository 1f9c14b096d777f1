"""What an RL run reports about its trainer and its weight syncs (steady-state window means)."""

from __future__ import annotations

import numpy as np

__all__ = ["trainer_summary", "sync_summary"]


def trainer_summary(plan, window_steps: np.ndarray) -> dict:
    """Trainer cost over the window: cost model, achieved MFU (per-operation model) or the
    assumed one, the per-category breakdown (seconds per step and shares), layout, assumptions."""
    costs = [plan.trainer[int(t)] for t in window_steps]
    lay = plan.layout
    per_op = bool(costs[0].breakdown_s)
    out = {"cost_model": "per_op" if per_op else "mfu", "layout": lay.describe(), "num_gpus": lay.num_gpus,
           "mfu": float(np.mean([c.mfu for c in costs])), "mfu_source": costs[0].mfu_source}
    if per_op:
        cats = costs[0].breakdown_s
        mean = {k: float(np.mean([c.breakdown_s[k] for c in costs])) for k in cats}
        total = sum(mean.values())
        out.update({"hfu": float(np.mean([c.hfu for c in costs])), "breakdown_s": mean,
                    "breakdown_frac": {k: v / total for k, v in mean.items()} if total > 0 else {},
                    "assumed": {k: {"value": v, "why": why} for k, (v, why) in costs[0].assumptions.items()}})
    return out


def sync_summary(plan, window_steps: np.ndarray) -> dict:
    """Weight sync over the window: mode, transport, link, bytes per receiver, mean parts."""
    syncs = [plan.syncs[int(t)] for t in window_steps]
    s0 = syncs[0]
    parts = {k: float(np.mean([s.parts[k] for s in syncs])) for k in s0.parts}
    return {"mode": s0.mode, "transport": s0.transport, "link": s0.link, "bytes_per_receiver": s0.bytes_per_receiver,
            "total_s": float(np.mean([s.total_s for s in syncs])), "parts_s": parts, "assumed": s0.assumed}
