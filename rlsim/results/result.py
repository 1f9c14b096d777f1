"""The one result type every simulation returns (:func:`rlsim.simulate`).

=============  ==========================================================================
``kind``       ``"rollout"`` (one rollout batch) or ``"rl"`` (RL steps of a pipeline)
``summary``    the ``summary.json`` contract (its schema depends on ``kind``)
``sequences``  one row per sequence of the main run (lengths, engine, admit / first-token /
               finish times, preemptions)
``segments``   the engines' timelines (one row per fast-path jump or iteration)
``steps``      RL: one row per step of the main run (its time split, rollout makespan);
               None for a rollout
``baseline``   the paired run without speculation (or the sync twin with
               ``baseline_mode="sync"``) as a RunResult, or None
``runs``       RL: every pipeline run by name (``spec``, ``baseline``, ``sync_baseline``)
=============  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """Summary and tables of a simulation (see the module docstring for each field)."""

    summary: dict
    sequences: pd.DataFrame
    segments: pd.DataFrame
    baseline: "RunResult | None" = None
    steps: pd.DataFrame | None = None
    runs: dict[str, Any] = field(default_factory=dict)
    kind: str = "rollout"
