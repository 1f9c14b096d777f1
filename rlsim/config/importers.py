"""``rlsim import nemo-rl|verl CONFIG.yaml``: a GRPO config users already have -> a scenario.

Every leaf key of the config is reported as **used** (mapped to a scenario field), **ignored**
(a key rlsim knows and does not model, with the reason: optimiser, logging, sampling...) or
**unknown** (neither); every scenario field the config cannot set is a **default**, stated with
its value and why (the GPU kind, the length distributions, the acceptance).  ``${a.b}``
interpolations (OmegaConf, as both frameworks' configs use) are resolved first.

Keys follow the frameworks' documented GRPO examples (NeMo-RL ``examples/configs/grpo_math_1B.yaml``
and ``grpo_math_8B_megatron.yaml``; verl ``examples/grpo_trainer/run_qwen2-7b.sh`` /
``verl/trainer/config/ppo_trainer.yaml``; ../shared/reference/ecosystem_conventions.md).

Mapping assumptions (stated in the report):

* NeMo-RL: generation on dedicated GPUs (``policy.generation.colocated.enabled: false``) takes
  ``colocated.resources`` out of ``cluster``; the rest trains;
* verl: the hybrid engine (actor and vLLM on the same GPUs) is ``sync_colocated``;
  ``ppo_mini_batch_size`` counts prompts, so the global training batch is it x ``rollout.n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from rlsim.errors import ConfigError

__all__ = ["ImportReport", "import_config", "FRAMEWORKS", "flatten"]

FRAMEWORKS = ("nemo-rl", "verl")


@dataclass
class ImportReport:
    """The scenario mapping and what happened to every key."""

    scenario: dict
    used: list[tuple[str, Any, str]] = field(default_factory=list)       # (key, value, scenario field)
    ignored: list[tuple[str, Any, str]] = field(default_factory=list)    # (key, value, why)
    unknown: list[tuple[str, Any]] = field(default_factory=list)
    defaults: list[tuple[str, Any, str]] = field(default_factory=list)   # (scenario field, value, why)

    def render(self) -> str:
        """The report ``rlsim import`` prints on stderr."""
        L = [f"used ({len(self.used)}):"] + [f"  {k} = {v!r} -> {t}" for k, v, t in self.used]
        L += [f"ignored ({len(self.ignored)}):"] + [f"  {k} = {v!r}: {w}" for k, v, w in self.ignored]
        L += [f"unknown ({len(self.unknown)}):"] + [f"  {k} = {v!r}" for k, v in self.unknown]
        L += [f"defaults ({len(self.defaults)}):"] + [f"  {t} = {v!r}: {w}" for t, v, w in self.defaults]
        return "\n".join(L)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted leaf keys of a nested mapping."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


_INTERP = re.compile(r"^\$\{([^}]+)\}$")


def _resolve(flat: dict[str, Any]) -> dict[str, Any]:
    out = dict(flat)
    for _ in range(5):
        for k, v in out.items():
            m = _INTERP.match(v) if isinstance(v, str) else None
            if m and m.group(1) in out:
                out[k] = out[m.group(1)]
    return out


def _set(d: dict, path: str, value) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def _get(d: dict, path: str, default=None):
    for p in path.split("."):
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def _model(v: str) -> str:
    from rlsim.models.registry import catalog_name

    return catalog_name(v) or v


_DTYPE = {"bfloat16": "bf16", "bf16": "bf16", "fp8": "fp8", "float16": "bf16"}

# (key, scenario field, transform); a transform returning None drops the value
Rule = tuple[str, str, Callable[[Any], Any] | None]

_NEMO: list[Rule] = [
    ("grpo.num_prompts_per_step", "workload.num_prompts_per_step", int),
    ("grpo.num_generations_per_prompt", "workload.num_generations_per_prompt", int),
    ("grpo.seed", "seed", int),
    ("grpo.async_grpo.enabled", "rl.pipeline", lambda v: "async" if v else None),
    ("grpo.async_grpo.max_trajectory_age_steps", "rl.max_trajectory_age_steps", int),
    ("grpo.async_grpo.in_flight_weight_updates", "rl.in_flight_weight_updates", bool),
    ("grpo.async_grpo.recompute_kv_cache_after_weight_updates", "rl.recompute_kv_on_weight_update", bool),
    ("loss_fn.reference_policy_kl_penalty", "rl.reference_policy_kl_penalty", float),
    ("policy.model_name", "model.name", _model),
    ("policy.precision", "model.dtype", lambda v: _DTYPE.get(str(v))),
    ("policy.train_global_batch_size", "rl.training.train_global_batch_size", int),
    ("policy.train_micro_batch_size", "rl.training.train_micro_batch_size", int),
    ("policy.logprob_batch_size", "rl.training.logprob_batch_size", int),
    ("policy.max_total_sequence_length", "rollout.engine.max_model_len", int),
    ("policy.sequence_packing.enabled", "rl.training.sequence_packing", bool),
    ("policy.generation.max_new_tokens", "workload.max_new_tokens", int),
    ("policy.generation.vllm_cfg.tensor_parallel_size", "rollout.engine.tensor_parallel_size", int),
    ("policy.generation.vllm_cfg.expert_parallel_size", "rollout.engine.enable_expert_parallel", lambda v: int(v) > 1),
    ("policy.generation.vllm_cfg.gpu_memory_utilization", "rollout.engine.gpu_memory_utilization", float),
    ("policy.generation.vllm_cfg.max_model_len", "rollout.engine.max_model_len", int),
    ("policy.generation.vllm_cfg.enforce_eager", "rollout.engine.enforce_eager", bool),
    ("policy.generation.vllm_cfg.kv_cache_dtype", "rollout.engine.kv_cache_dtype", str),
    ("policy.generation.vllm_cfg.max_num_seqs", "rollout.engine.max_num_seqs", int),
    ("policy.generation.vllm_cfg.max_num_batched_tokens", "rollout.engine.max_num_batched_tokens", int),
    ("policy.generation.vllm_cfg.enable_prefix_caching", "rollout.engine.enable_prefix_caching", bool),
    ("policy.generation.vllm_kwargs.speculative_config.method", "rollout.engine.speculative_config.method", str),
    ("policy.generation.vllm_kwargs.speculative_config.model", "rollout.engine.speculative_config.model", _model),
    ("policy.generation.vllm_kwargs.speculative_config.num_speculative_tokens",
     "rollout.engine.speculative_config.num_speculative_tokens", int),
    ("policy.generation.vllm_kwargs.speculative_config.draft_tensor_parallel_size",
     "rollout.engine.speculative_config.draft_tensor_parallel_size", int),
]
for _cfg, _names in (("dtensor_cfg", {"tensor_parallel_size": "tensor_parallel_size"}),
                     ("megatron_cfg", {"tensor_model_parallel_size": "tensor_parallel_size",
                                       "pipeline_model_parallel_size": "pipeline_parallel_size",
                                       "expert_model_parallel_size": "expert_parallel_size",
                                       "expert_tensor_parallel_size": "expert_tensor_parallel_size"})):
    for _k, _t in _names.items():
        _NEMO.append((f"policy.{_cfg}.{_k}", f"rl.training.{_t}", int))
    _NEMO += [(f"policy.{_cfg}.context_parallel_size", "rl.training.context_parallel_size", int),
              (f"policy.{_cfg}.sequence_parallel", "rl.training.sequence_parallel", bool),
              (f"policy.{_cfg}.activation_checkpointing", "rl.training.activation_checkpointing", bool)]

_NEMO_IGNORED = [
    ("grpo.max_num_steps", "rlsim simulates until the step time is steady (rl.num_steps to fix it)"),
    ("grpo.max_num_epochs", "epochs do not change the step time"),
    ("grpo.val_", "validation runs are not simulated"), ("grpo.normalize_rewards", "algorithmic, no time cost"),
    ("grpo.use_leave_one_out_baseline", "algorithmic, no time cost"), ("grpo.overlong_filtering", "algorithmic"),
    ("grpo.max_rollout_turns", "single-turn rollouts are modelled"), ("loss_fn.", "loss terms do not change the timing model"),
    ("policy.optimizer.", "the optimiser's maths is in the trainer model's fixed Adam cost"),
    ("policy.scheduler", "learning-rate schedule: no time cost"), ("policy.tokenizer.", "tokenisation is not timed"),
    ("policy.generation.temperature", "sampling: response lengths come from workload.response_length"),
    ("policy.generation.top_p", "sampling"), ("policy.generation.top_k", "sampling"),
    ("policy.generation.stop_", "sampling"), ("policy.generation.backend", "vLLM is the engine modelled"),
    ("policy.generation.vllm_cfg.async_engine", "the engine's scheduling is modelled either way"),
    ("policy.generation.vllm_cfg.precision", "the policy's precision sets the rollout dtype"),
    ("policy.generation.vllm_cfg.pipeline_parallel_size", "rollout pipeline parallelism is not modelled (1 assumed)"),
    ("policy.dtensor_cfg.enabled", "selects the trainer backend (its layout keys are used)"),
    ("policy.dtensor_cfg.cpu_offload", "offload is not modelled"), ("policy.megatron_cfg.optimizer.", "optimiser"),
    ("policy.megatron_cfg.scheduler.", "scheduler"), ("policy.megatron_cfg.distributed_data_parallel_config.", "DDP knobs"),
    ("policy.max_grad_norm", "no time cost"), ("policy.make_sequence_length_divisible_by", "padding detail"),
    ("policy.dynamic_batching.", "sequence packing is the batching modelled"), ("policy.refit_buffer_size_gb", "not modelled"),
    ("policy.sequence_packing.", "packing details"), ("policy.dtensor_cfg.", "dtensor detail not modelled"),
    ("policy.megatron_cfg.", "megatron detail not modelled"), ("checkpointing.", "checkpoints are not timed"),
    ("logger.", "logging"), ("data.", "datasets: lengths come from workload"), ("env.", "reward environment: rl.reward_time_s"),
    ("policy.generation.vllm_cfg.", "vLLM detail not modelled"), ("policy.generation.", "generation detail not modelled"),
]

_VERL: list[Rule] = [
    ("data.train_batch_size", "workload.num_prompts_per_step", int),
    ("data.max_prompt_length", "workload.prompt_length.max_tokens", int),
    ("data.max_response_length", "workload.max_new_tokens", int),
    ("actor_rollout_ref.model.path", "model.name", _model),
    ("actor_rollout_ref.model.enable_gradient_checkpointing", "rl.training.activation_checkpointing", bool),
    ("actor_rollout_ref.model.use_remove_padding", "rl.training.sequence_packing", bool),
    ("actor_rollout_ref.rollout.n", "workload.num_generations_per_prompt", int),
    ("actor_rollout_ref.rollout.tensor_model_parallel_size", "rollout.engine.tensor_parallel_size", int),
    ("actor_rollout_ref.rollout.gpu_memory_utilization", "rollout.engine.gpu_memory_utilization", float),
    ("actor_rollout_ref.rollout.max_num_batched_tokens", "rollout.engine.max_num_batched_tokens", int),
    ("actor_rollout_ref.rollout.max_num_seqs", "rollout.engine.max_num_seqs", int),
    ("actor_rollout_ref.rollout.max_model_len", "rollout.engine.max_model_len", int),
    ("actor_rollout_ref.rollout.enforce_eager", "rollout.engine.enforce_eager", bool),
    ("actor_rollout_ref.rollout.enable_chunked_prefill", "rollout.engine.enable_chunked_prefill", bool),
    ("actor_rollout_ref.rollout.enable_prefix_caching", "rollout.engine.enable_prefix_caching", bool),
    ("actor_rollout_ref.rollout.dtype", "model.dtype", lambda v: _DTYPE.get(str(v))),
    ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", "rl.training.logprob_batch_size", int),
    ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", "rl.training.train_micro_batch_size", int),
    ("actor_rollout_ref.actor.megatron.tensor_model_parallel_size", "rl.training.tensor_parallel_size", int),
    ("actor_rollout_ref.actor.megatron.pipeline_model_parallel_size", "rl.training.pipeline_parallel_size", int),
    ("actor_rollout_ref.actor.megatron.expert_model_parallel_size", "rl.training.expert_parallel_size", int),
    ("actor_rollout_ref.actor.megatron.expert_tensor_parallel_size", "rl.training.expert_tensor_parallel_size", int),
    ("actor_rollout_ref.actor.megatron.context_parallel_size", "rl.training.context_parallel_size", int),
    ("actor_rollout_ref.actor.megatron.sequence_parallel", "rl.training.sequence_parallel", bool),
]
_VERL_SPECIAL = ("actor_rollout_ref.actor.ppo_mini_batch_size", "actor_rollout_ref.actor.use_kl_loss",
                 "actor_rollout_ref.actor.kl_loss_coef", "algorithm.use_kl_in_reward", "algorithm.kl_ctrl.kl_coef",
                 "trainer.n_gpus_per_node", "trainer.nnodes", "actor_rollout_ref.rollout.name",
                 "algorithm.adv_estimator", "trainer.total_training_steps", "trainer.total_epochs")
_VERL_IGNORED = [
    ("actor_rollout_ref.actor.optim.", "the optimiser's maths is in the trainer model's fixed Adam cost"),
    ("actor_rollout_ref.actor.fsdp_config.", "FSDP offload / wrap details are not modelled"),
    ("actor_rollout_ref.ref.", "the reference policy's logprob pass follows the KL setting"),
    ("actor_rollout_ref.actor.strategy", "fsdp / megatron: the layout keys are used"),
    ("actor_rollout_ref.actor.entropy_coeff", "loss term"), ("actor_rollout_ref.actor.clip_ratio", "loss term"),
    ("actor_rollout_ref.actor.kl_loss_type", "loss term"), ("actor_rollout_ref.actor.loss_agg_mode", "loss term"),
    ("actor_rollout_ref.actor.ppo_epochs", "one optimiser pass per step is modelled"),
    ("actor_rollout_ref.actor.ulysses_sequence_parallel_size", "Ulysses sequence parallelism is not modelled"),
    ("actor_rollout_ref.actor.use_dynamic_bsz", "sequence packing is the batching modelled"),
    ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu", "dynamic batch size detail"),
    ("actor_rollout_ref.rollout.temperature", "sampling: response lengths come from workload.response_length"),
    ("actor_rollout_ref.rollout.top_p", "sampling"), ("actor_rollout_ref.rollout.top_k", "sampling"),
    ("actor_rollout_ref.rollout.do_sample", "sampling"), ("actor_rollout_ref.rollout.mode", "colocated either way"),
    ("actor_rollout_ref.rollout.free_cache_engine", "the colocated sleep / wake is modelled (weight_sync)"),
    ("actor_rollout_ref.rollout.load_format", "weight loading is modelled by the weight sync"),
    ("actor_rollout_ref.rollout.log_prob_", "logprob detail"), ("actor_rollout_ref.rollout.", "rollout detail not modelled"),
    ("actor_rollout_ref.model.", "model detail not modelled"), ("actor_rollout_ref.hybrid_engine", "colocated (assumed)"),
    ("algorithm.", "algorithmic, no time cost"), ("data.", "datasets: lengths come from workload"),
    ("trainer.", "bookkeeping (logging, checkpoints, validation)"), ("critic.", "GRPO has no critic"),
    ("reward_model.", "rule-based reward assumed: rl.reward_time_s"), ("custom_reward_function.", "reward: rl.reward_time_s"),
    ("actor_rollout_ref.actor.", "actor detail not modelled"),
]


def _apply(flat: dict, rules: list[Rule], ignored: list[tuple[str, str]], special: tuple[str, ...], rep: ImportReport):
    by_key = {k: (t, f) for k, t, f in rules}
    for key, value in flat.items():
        if key in by_key:
            target, fn = by_key[key]
            v = fn(value) if (fn is not None and value is not None) else value
            if v is None:
                rep.ignored.append((key, value, f"{target}: not set by this value"))
                continue
            _set(rep.scenario, target, v)
            rep.used.append((key, value, target))
        elif key in special:
            continue
        else:
            why = next((w for p, w in ignored if key == p or key.startswith(p)), None)
            if why is None:
                rep.unknown.append((key, value))
            else:
                rep.ignored.append((key, value, why))


def _defaults(rep: ImportReport, hardware: str) -> None:
    sc = rep.scenario
    wl = sc.setdefault("workload", {})
    maxnew = wl.setdefault("max_new_tokens", 4096)
    dflt = [
        ("cluster.hardware", hardware, "the config names no GPU kind (--hardware)"),
        ("workload.prompt_length.kind", "lognormal", "assumed: the config has the dataset, not its length distribution"),
        ("workload.prompt_length.mean_tokens", 300, "assumed (math prompts, as scenarios/qwen8b_sync.yaml)"),
        ("workload.prompt_length.sigma", 0.4, "assumed"),
        ("workload.response_length.kind", "lognormal", "assumed: response lengths are the policy's, not the config's"),
        ("workload.response_length.mean_tokens", max(16, min(3500, maxnew // 2)),
         "assumed: half of max_new_tokens, at most 3,500 (scenarios/qwen8b_sync.yaml)"),
        ("workload.response_length.sigma", 0.9, "assumed"),
        ("rl.reward_time_s", 1.0, "assumed (rule-based verifier)"),
        ("name", "imported", "name of the imported scenario"),
    ]
    if _get(sc, "rollout.engine.speculative_config") is not None:
        dflt.append(("rollout.engine.speculative_config.acceptance", {"kind": "constant", "rate": 0.68},
                     "assumed: AL 2.47 at k = 3, the published 8B figure (published_results.md 1)"))
    if not wl.get("max_new_tokens"):
        dflt.append(("workload.max_new_tokens", 4096, "assumed"))
    for target, value, why in dflt:
        if _get(sc, target) is None:
            _set(sc, target, value)
            rep.defaults.append((target, value, why))
    if "model" not in sc or "name" not in sc["model"]:
        raise ConfigError("import: the config names no model (policy.model_name / actor_rollout_ref.model.path)")


_NEMO_SPECIAL = ("cluster.gpus_per_node", "cluster.num_nodes", "policy.megatron_cfg.enabled",
                 "policy.generation.colocated.enabled",
                 "policy.generation.colocated.resources.gpus_per_node", "policy.generation.colocated.resources.num_nodes")


def _nemo(flat: dict, rep: ImportReport) -> None:
    backend, other = ("megatron_cfg", "dtensor_cfg") if flat.get("policy.megatron_cfg.enabled") else \
        ("dtensor_cfg", "megatron_cfg")
    rules = [r for r in _NEMO if not r[0].startswith(f"policy.{other}.")]
    ignored = [(f"policy.{other}.", f"the {other} trainer backend is not enabled")] + _NEMO_IGNORED
    _apply(flat, rules, ignored, _NEMO_SPECIAL, rep)
    sc = rep.scenario
    nodes = int(flat.get("cluster.num_nodes", 1) or 1)
    total = nodes * int(flat.get("cluster.gpus_per_node", 8) or 8)
    _set(sc, "cluster.num_gpus", total)
    for key in ("cluster.gpus_per_node", "cluster.num_nodes"):
        if key in flat:
            rep.used.append((key, flat[key], "cluster.num_gpus (gpus_per_node x num_nodes)"))
    colocated = flat.get("policy.generation.colocated.enabled", True)
    pipeline = _get(sc, "rl.pipeline")
    if not colocated or pipeline == "async":
        g = int(flat.get("policy.generation.colocated.resources.gpus_per_node", 0) or 0) * \
            int(flat.get("policy.generation.colocated.resources.num_nodes", 1) or 1)
        if g <= 0 or g >= total:
            raise ConfigError("import: policy.generation.colocated.resources must give generation fewer GPUs than "
                              f"the cluster's {total} (non-colocated / async generation)")
        _set(sc, "rollout.num_gpus", g)
        _set(sc, "rl.training.num_gpus", total - g)
        for key in _NEMO_SPECIAL[3:]:
            if key in flat:
                rep.used.append((key, flat[key], "rollout.num_gpus (generation resources; training: the rest)"))
        if pipeline is None:
            _set(sc, "rl.pipeline", "sync_disaggregated")
    else:
        if pipeline is None:
            _set(sc, "rl.pipeline", "sync_colocated")
        for key in _NEMO_SPECIAL[3:]:
            if key in flat:
                rep.used.append((key, flat[key], "rl.pipeline = sync_colocated (generation shares the training GPUs)"))
    if "policy.megatron_cfg.enabled" in flat:
        rep.used.append(("policy.megatron_cfg.enabled", flat.get("policy.megatron_cfg.enabled"),
                         f"trainer layout from policy.{backend}"))


def _verl(flat: dict, rep: ImportReport) -> None:
    _apply(flat, _VERL, _VERL_IGNORED, _VERL_SPECIAL, rep)
    sc = rep.scenario
    name = flat.get("actor_rollout_ref.rollout.name", "vllm")
    if name != "vllm":
        raise ConfigError(f"import: actor_rollout_ref.rollout.name = {name!r}: only vllm rollouts are modelled")
    rep.used.append(("actor_rollout_ref.rollout.name", name, "(vLLM engine)"))
    total = int(flat.get("trainer.n_gpus_per_node", 8) or 8) * int(flat.get("trainer.nnodes", 1) or 1)
    _set(sc, "cluster.num_gpus", total)
    for key in ("trainer.n_gpus_per_node", "trainer.nnodes"):
        if key in flat:
            rep.used.append((key, flat[key], "cluster.num_gpus (n_gpus_per_node x nnodes)"))
    _set(sc, "rl.pipeline", "sync_colocated")
    rep.defaults.append(("rl.pipeline", "sync_colocated", "verl's hybrid engine: actor and vLLM share the GPUs"))
    mini = flat.get("actor_rollout_ref.actor.ppo_mini_batch_size")
    if mini is not None:
        n = int(flat.get("actor_rollout_ref.rollout.n", 1) or 1)
        _set(sc, "rl.training.train_global_batch_size", int(mini) * n)
        rep.used.append(("actor_rollout_ref.actor.ppo_mini_batch_size", mini,
                         "rl.training.train_global_batch_size (x rollout.n)"))
    kl = 0.0
    if flat.get("actor_rollout_ref.actor.use_kl_loss"):
        kl = float(flat.get("actor_rollout_ref.actor.kl_loss_coef", 0.001))
    if flat.get("algorithm.use_kl_in_reward"):
        kl = max(kl, float(flat.get("algorithm.kl_ctrl.kl_coef", 0.001)))
    for key in ("actor_rollout_ref.actor.use_kl_loss", "actor_rollout_ref.actor.kl_loss_coef", "algorithm.use_kl_in_reward",
                "algorithm.kl_ctrl.kl_coef"):
        if key in flat:
            rep.used.append((key, flat[key], "rl.reference_policy_kl_penalty (> 0: a reference logprob pass)"))
    _set(sc, "rl.reference_policy_kl_penalty", kl)
    for key in ("algorithm.adv_estimator", "trainer.total_training_steps", "trainer.total_epochs"):
        if key in flat:
            rep.ignored.append((key, flat[key], "algorithmic / run length: no effect on the step time"))


def import_config(framework: str, config: dict, hardware: str = "h100_sxm") -> ImportReport:
    """Map a NeMo-RL or verl GRPO config (a parsed YAML mapping) to a scenario mapping."""
    if framework not in FRAMEWORKS:
        raise ConfigError(f"import: framework {framework!r} must be one of {', '.join(FRAMEWORKS)}")
    if not isinstance(config, dict):
        raise ConfigError("import: the config must be a YAML mapping")
    flat = _resolve(flatten(config))
    rep = ImportReport({})
    (_nemo if framework == "nemo-rl" else _verl)(flat, rep)
    _defaults(rep, hardware)
    return rep
