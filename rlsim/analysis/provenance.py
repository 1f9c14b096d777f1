"""Which inputs of an RL step's stages are measured, fitted or assumed (``rlsim plan``'s
"Inputs of the binding stage").

The classification is read from the configuration, not typed in:

* GPU kernel / collective times: the hardware profile's ``calibration.status``
  (``calibrated``: **fitted** to kernel times measured on that GPU; ``transferred``: **fitted**
  on another GPU of the same architecture; ``uncalibrated``: **assumed** reference values);
* acceptance: a ``constant`` or ``per_position`` rate written in the scenario is **assumed**
  (unless it comes with a source that says measured); ``empirical`` acceptance read from a
  file is **measured**;
* lengths: a parametric distribution is **assumed**; lengths read from a file are **measured**;
* engine CPU overheads, trainer per-operation terms and weight-sync terms carry their own
  "assumed" labels (rlsim.training.perop, rlsim.training.weight_sync), so they are **assumed**;
* a trainer MFU set in the scenario or a profile's ``training`` section is **assumed** unless
  its source says measured / fitted; the per-operation trainer's achieved MFU is **derived**
  (from the fitted kernel times and its assumed terms, listed).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["stage_inputs", "binding_stage", "STAGES"]

#: The stages of an RL step, as the plan's rows name them (column of seconds per step).
STAGES = {"generation": "generation_time_s", "logprob": "logprob_time_s", "training": "train_time_s",
          "weight sync": "weight_sync_time_s"}


def binding_stage(row) -> str:
    """The stage with the most seconds in a plan row (the one that bounds the step)."""
    vals = {k: float(row.get(c, 0.0) or 0.0) for k, c in STAGES.items()}
    return max(vals, key=vals.get)


def _kind_of_profile(hw) -> str:
    return {"calibrated": "fitted", "transferred": "fitted"}.get(hw.calibration.status, "assumed")


def _kind_of_text(text: str, default: str = "assumed") -> str:
    t = (text or "").lower()
    for word in ("assumed", "measured", "fitted"):
        if word in t:
            return word
    return default


def stage_inputs(scenario: Path, overrides: list[str], point: dict, stage: str) -> list[list[str]]:
    """``[[input, value, measured|fitted|assumed, source], ...]`` of ``stage`` at ``point`` (the
    plan's ``--set``-style point)."""
    from rlsim.config import load_scenario
    from rlsim.rl.pipeline import step_batches
    from rlsim.rl.plan import cost_plan
    from rlsim.sim import resolve

    res = resolve(load_scenario(scenario, list(overrides) + [f"{k}={json.dumps(v)}" for k, v in point.items()]))
    sc, hw = res.scenario, res.hw
    prof = [f"{hw.name} kernel times", hw.calibration.status, _kind_of_profile(hw), hw.calibration.source[:120]]
    rows: list[list[str]] = []
    if stage == "generation":
        rows.append(prof)
        spec = sc.rollout.engine.speculative_config
        if spec is not None:
            acc = spec.acceptance
            kind = "measured" if acc.kind == "empirical" else "assumed"
            val = getattr(acc, "rate", None) or getattr(acc, "rates", None) or getattr(acc, "path", None)
            rows.append(["acceptance (per draft token)", f"{acc.kind} {val}", kind,
                         "scenario rollout.engine.speculative_config.acceptance"])
        rl_len = sc.workload.response_length
        rows.append(["response lengths", f"{rl_len.kind}", "measured" if rl_len.kind in ("empirical", "file") else "assumed",
                     "scenario workload.response_length"])
        cpu = sc.rollout.engine.cpu_overhead
        rows.append(["engine CPU overheads", f"step {cpu.step_us} us, per seq {cpu.per_seq_us} us", "assumed",
                     "scenario rollout.engine.cpu_overhead"])
        return rows
    batches = step_batches(res, sc.seed, 1)
    plan = cost_plan(res, batches, sc.rl.pipeline, res.speculative is not None)
    if stage in ("training", "logprob"):
        rows.append(prof)
        c = plan.trainer[0]
        kind = "derived" if "per-operation" in c.mfu_source else _kind_of_text(c.mfu_source)
        rows.append(["trainer efficiency", f"MFU {c.mfu:.3f}", kind,
                     c.mfu_source + ("; from the fitted kernel times and the assumed terms below" if kind == "derived" else "")])
        for name, (value, why) in sorted(c.assumptions.items()):
            rows.append([f"trainer {name}", "-" if value is None else f"{value}", "assumed", str(why)[:120]])
        return rows
    s = plan.syncs[0]
    rows.append([f"{hw.name} collectives", hw.calibration.status, _kind_of_profile(hw), hw.calibration.source[:120]])
    for name, value in sorted(s.assumed.items()):
        rows.append([f"weight sync {name}", f"{value:g}", "assumed", "rlsim.training.weight_sync"])
    return rows
