"""Warnings of an RL run: where its numbers rest on extrapolation or assumptions (DESIGN 2.7).

Every warning is printed by ``rlsim run`` and carried in ``summary.json`` (``warnings``)."""

from __future__ import annotations

__all__ = ["rl_warnings", "collective_groups"]


def collective_groups(res, lay) -> dict[str, tuple[int, int]]:
    """Collective groups of a run, ``{what: (GPUs, stride)}``: the rollout engines' tensor
    parallelism and the trainer's TP, CP, expert-parallel and data-parallel groups."""
    groups = {"rollout tensor-parallel all-reduce": (res.tp, 1)}
    if lay is None:
        return groups
    groups["trainer tensor-parallel"] = (lay.tp, 1)
    groups["trainer context-parallel ring"] = (lay.cp, lay.tp)
    groups["trainer expert-parallel all-to-all"] = (lay.ep, lay.etp)
    groups["trainer data-parallel gradients"] = (lay.dp * lay.cp, lay.tp)
    if lay.expert_params_per_gpu > 0:
        groups["trainer expert data-parallel gradients"] = (lay.edp, lay.etp * lay.ep)
    return groups


def _extrapolated(hw, n: int, stride: int) -> bool:
    """A group whose in-domain part is larger than the measured group sizes."""
    if n <= 1:
        return False
    per_domain = n if n * stride <= hw.topology.nvlink_domain_gpus else max(1, hw.topology.nvlink_domain_gpus // stride)
    return hw.collectives_extrapolated(min(n, per_domain))


def rl_warnings(res, plan, summary: dict) -> list[str]:
    """Calibration status, extrapolated collectives, an unconverged window, assumed trainer MFU."""
    hw, out = res.hw, []
    if hw.calibration.status != "calibrated":
        out.append(f"hardware profile {hw.name} is {hw.calibration.status}: {hw.calibration.source}")
    measured = hw.collectives.measured_max_gpus
    for what, (n, stride) in collective_groups(res, plan.layout).items():
        if _extrapolated(hw, n, stride):
            out.append(f"{hw.name}: {what} over {n} GPUs is extrapolated beyond the measured {measured}-GPU "
                       "collectives (physical NVLink-fabric model, not fitted)")
    rl = res.scenario.rl
    change = summary.get("convergence_last_change")
    if not summary.get("converged"):
        how = (f"rl.num_steps = {rl.num_steps} fixes the window" if rl.num_steps is not None
               else f"it reached rl.convergence.max_steps = {rl.convergence.max_steps}")
        last = f"{100 * change:.1f} %" if change is not None else "not measurable (window shorter than two cycles)"
        out.append(f"{summary['pipeline']} run: the steady-state step time has not converged ({how}; last cycle "
                   f"changed it by {last}, rl.convergence.rel_tol = {100 * rl.convergence.rel_tol:g} %)")
    tr = summary.get("trainer") or {}
    if tr.get("cost_model") == "mfu":
        out.append(f"trainer time from one assumed MFU = {tr['mfu']:.3g} ({tr['mfu_source']}); the per-operation "
                   "model is used when rl.training.mfu is unset")
    return out
