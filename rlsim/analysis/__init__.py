"""Sweeps, plots of their results and capacity planning (DESIGN 10-11).

* :func:`sweep` -- grid / zip over any scenario field, local process pool or Ray, streamed to
  parquet, resumable (``rlsim sweep``);
* :mod:`rlsim.analysis.plots` -- speedup heatmaps, speedup / best k vs batch, step breakdown;
* :mod:`rlsim.analysis.plan` -- ``rlsim plan``: the cheapest cluster meeting a step-time target.
"""

from rlsim.analysis.sweep import summarize, sweep

__all__ = ["sweep", "summarize"]
