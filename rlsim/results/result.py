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

Figures (matplotlib ``Figure``, the same as the PNGs ``--out`` writes): ``plot_running_batch()``,
and for RL results ``plot_breakdown()`` and ``plot_gantt()``.
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

    def _need_rl(self, what: str) -> None:
        if self.kind != "rl":
            from rlsim.errors import ConfigError

            raise ConfigError(f"RunResult.{what}() needs an RL result (this one is a {self.kind})")

    def plot_running_batch(self):
        """Running sequences per engine over time (the main run; RL: the speculative run)."""
        from rlsim.results.writers import running_batch_figure

        segs = self.runs["spec"].segments if self.kind == "rl" else self.segments
        return running_batch_figure(segs, f"{self.summary.get('scenario', '')}: running batch per engine")

    def plot_breakdown(self):
        """RL: the stacked per-step time breakdown of every run."""
        from rlsim.results.rl import breakdown_figure

        self._need_rl("plot_breakdown")
        return breakdown_figure(self)

    def plot_gantt(self):
        """RL: the rollout and training pools over time, per run."""
        from rlsim.results.rl import gantt_figure

        self._need_rl("plot_gantt")
        return gantt_figure(self)
