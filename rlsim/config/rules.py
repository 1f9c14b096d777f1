"""Rules across fields of a validated scenario that no single field's type can state (checked
once, on load, before anything touches the filesystem or simulates).

* path-like fields (:data:`PATH_FIELDS`) short enough for the filesystem (:mod:`rlsim._paths`);
* speculative decoding: a draft model name, when given, is not empty; ``prompt_lookup_min <=
  prompt_lookup_max`` (vLLM's rule for n-gram lookup);
* RL: ``rl.training.num_gpus`` within the cluster (colocated: the trainer shares the cluster's
  GPUs; disaggregated: it takes what the rollouts leave); ``train_global_batch_size`` at most
  the sequences one step generates (NeMo-RL trains on the step's batch); a drafting
  ``rl.policy`` (:data:`DRAFTING_POLICIES`) needs a speculative_config; length_aware_draft needs ``short_draft_tokens <=
  long_draft_tokens`` and an acceptance model without context decay or regimes.  (The warm-up against ``num_steps`` is :func:`rlsim.rl.steady.planned_steps`'s rule.)
"""

from __future__ import annotations

from rlsim._paths import check_path_text
from rlsim.config.scenario import Scenario
from rlsim.errors import ConfigError

__all__ = ["check_path_fields", "check_rules", "PATH_FIELDS", "DRAFTING_POLICIES"]

#: Scenario fields whose value may name a file or folder.
PATH_FIELDS = ("cluster.hardware", "cluster.kernel_tables", "model.name", "rollout.engine.speculative_config.model",
               "workload.prompt_length.path", "workload.response_length.path", "serving.dataset_path")


#: ``rl.policy`` kinds that act on the drafter and so need ``rollout.engine.speculative_config``.
DRAFTING_POLICIES = ("history_drafter", "concurrency_draft", "drafter_tail_training", "length_aware_draft",
                     "decoupled_draft")


def _get(sc, dotted: str):
    cur = sc
    for part in dotted.split("."):
        cur = getattr(cur, part, None)
        if cur is None:
            return None
    return cur


def check_path_fields(sc: Scenario, source: str | None) -> None:
    """Every :data:`PATH_FIELDS` value short enough to be a path (before the filesystem sees it)."""
    for field in PATH_FIELDS:
        value = _get(sc, field)
        if isinstance(value, str):
            check_path_text(value, source, field)


def _check_speculative(sc: Scenario, src: str | None) -> None:
    spec = sc.rollout.engine.speculative_config
    if spec is None:
        return
    where = "rollout.engine.speculative_config"
    if spec.model is not None and not spec.model.strip():
        raise ConfigError.at(src, f"{where}.model", spec.model, "must not be empty (omit it for the method's default)")
    if spec.prompt_lookup_min > spec.prompt_lookup_max:
        raise ConfigError.at(src, f"{where}.prompt_lookup_min", spec.prompt_lookup_min,
                             f"must be <= prompt_lookup_max = {spec.prompt_lookup_max}")


def _check_rl(sc: Scenario, src: str | None) -> None:
    rl = sc.rl
    if rl is None:
        return
    tr = rl.training
    if tr.num_gpus is not None and tr.num_gpus > sc.cluster.num_gpus:
        raise ConfigError.at(src, "rl.training.num_gpus", tr.num_gpus, f"exceeds cluster.num_gpus = {sc.cluster.num_gpus}")
    if tr.train_global_batch_size is not None and sc.workload is not None \
            and tr.train_global_batch_size > sc.workload.num_sequences_per_step:
        w = sc.workload
        raise ConfigError.at(src, "rl.training.train_global_batch_size", tr.train_global_batch_size,
                             f"exceeds the sequences of one step: workload.num_prompts_per_step x "
                             f"num_generations_per_prompt = {w.num_prompts_per_step} x {w.num_generations_per_prompt} "
                             f"= {w.num_sequences_per_step}")
    spec = sc.rollout.engine.speculative_config
    if rl.policy is not None and rl.policy.kind in DRAFTING_POLICIES and spec is None:
        raise ConfigError.at(src, "rl.policy.kind", rl.policy.kind, "needs rollout.engine.speculative_config (it drafts)")
    if rl.policy is not None and rl.policy.kind == "length_aware_draft":
        _check_draft_budgets(rl.policy, spec, src)


def _check_draft_budgets(policy, spec, src: str | None) -> None:
    """length_aware_draft: short budget <= long budget; acceptance independent of the context (the
    draws of a fast-path jump are solved at the iteration's k, then capped per request)."""
    if policy.short_draft_tokens > policy.long_draft_tokens:
        raise ConfigError.at(src, "rl.policy.short_draft_tokens", policy.short_draft_tokens,
                             f"must be <= long_draft_tokens = {policy.long_draft_tokens}")
    acc = spec.acceptance
    if acc.kind == "regime" or getattr(acc, "context_decay", None) is not None:
        raise ConfigError.at(src, "rl.policy.kind", policy.kind, "needs acceptance without context_decay or regimes "
                                                                 "(per-request budgets cap draws made at the iteration's k)")


def check_rules(sc: Scenario, source: str | None) -> None:
    """Every rule of the module docstring; the first broken one as a ConfigError."""
    check_path_fields(sc, source)
    _check_speculative(sc, source)
    _check_rl(sc, source)
