"""Warnings about the scenario's settings (not the model's kernels): reported in every run's
output and ``summary.json`` through :func:`rlsim.sim.warnings.model_warnings`.

* rollout TP above the model's KV-head count: vLLM replicates each KV head on ``TP / kv``
  GPUs, so the KV cache per GPU stops shrinking (rlsim.cost.memory models the replication);
* measured per-position acceptance (``per_position`` / ``empirical``) with fewer positions than
  ``num_speculative_tokens``: the positions beyond are extrapolated (geometric, or never
  accepted with ``extrapolate: false``), not measured.
"""

from __future__ import annotations

__all__ = ["setting_warnings"]


def setting_warnings(res) -> list[str]:
    """The warnings of the module docstring for a resolved scenario."""
    out: list[str] = []
    arch, tp = res.arch, res.tp
    kv = arch.num_key_value_heads
    if arch.attention_kind != "mla" and tp > kv:
        out.append(f"rollout.engine.tensor_parallel_size = {tp} > {arch.name}'s {kv} KV heads: vLLM replicates each KV "
                   f"head on {tp // kv} GPUs, so the KV cache per GPU does not shrink beyond TP {kv}")
    spec = res.scenario.rollout.engine.speculative_config
    acc = getattr(spec, "acceptance", None)
    if acc is not None and acc.kind in ("per_position", "empirical"):
        measured = len(acc.rates) if acc.kind == "per_position" else len(acc.accepted_counts) - 1
        k = spec.num_speculative_tokens
        if k > measured:
            how = ("extrapolated geometrically (the last conditional rate repeats)" if acc.extrapolate
                   else "never accepted (extrapolate: false)")
            out.append(f"acceptance: {acc.kind} rates cover {measured} positions but num_speculative_tokens = {k}: "
                       f"positions {measured + 1}..{k} are {how}, not measured")
    return out
