"""``rlsim export vllm|nemo-rl SCENARIO``: the scenario as a ``vllm serve`` command line or as a
NeMo-RL GRPO config fragment (the inverse of rlsim.config.importers' key mapping; keys per
../shared/reference/ecosystem_conventions.md).

Only what the scenario sets explicitly is exported (a field left to vLLM's default stays out of
the command line), except ``tensor_parallel_size``.  The model is written as its HF id (the
catalog's first ``_hf_ids`` alias) where the catalog has one.
"""

from __future__ import annotations

import json
import shlex

import yaml

__all__ = ["vllm_serve_command", "nemo_rl_fragment", "hf_id"]

_DTYPE = {"bf16": "bfloat16", "fp8": "fp8", "fp8_block": "fp8"}
_ENGINE_FLAGS = ("max_num_seqs", "max_num_batched_tokens", "max_model_len", "gpu_memory_utilization", "block_size",
                 "kv_cache_dtype", "data_parallel_size")
_BOOL_FLAGS = ("enable_prefix_caching", "enable_chunked_prefill", "enforce_eager", "async_scheduling",
               "enable_expert_parallel")


def hf_id(model: str) -> str:
    """The HF id of a catalog model (its first ``_hf_ids`` alias), else the name as given."""
    from rlsim.errors import RlsimError
    from rlsim.models.registry import catalog_entry, catalog_name

    name = catalog_name(model)
    if name is None:
        return model
    try:
        ids = catalog_entry(name).get("_hf_ids") or []
    except RlsimError:
        ids = []
    return ids[0] if ids else model


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def vllm_serve_command(loaded) -> str:
    """``vllm serve MODEL --flag value ...`` of the scenario's rollout engine."""
    sc, raw = loaded.scenario, loaded.raw
    e = sc.rollout.engine
    set_ = (raw.get("rollout") or {}).get("engine") or {}
    args = ["vllm", "serve", hf_id(sc.model.name), "--tensor-parallel-size", str(e.tensor_parallel_size)]
    if sc.model.dtype is not None:
        args += ["--dtype", "bfloat16"] if sc.model.dtype == "bf16" else ["--quantization", "fp8"]
    for k in _ENGINE_FLAGS:
        if k in set_ and getattr(e, k) is not None:
            args += [_flag(k), str(getattr(e, k))]
    for k in _BOOL_FLAGS:
        if k in set_:
            v = bool(getattr(e, k))
            if k in ("enable_prefix_caching", "enable_chunked_prefill"):
                args.append(_flag(k) if v else "--no-" + k.replace("_", "-"))
            elif v:
                args.append(_flag(k))
    spec = e.speculative_config
    if spec is not None:
        d = {"method": spec.method, "num_speculative_tokens": spec.num_speculative_tokens}
        if spec.model:
            d["model"] = hf_id(spec.model)
        if spec.draft_tensor_parallel_size:
            d["draft_tensor_parallel_size"] = spec.draft_tensor_parallel_size
        if spec.method == "ngram":
            d.update(prompt_lookup_max=spec.prompt_lookup_max, prompt_lookup_min=spec.prompt_lookup_min)
        args += ["--speculative-config", json.dumps(d, sort_keys=True)]
    return shlex.join(args)


def nemo_rl_fragment(loaded) -> str:
    """The NeMo-RL GRPO config keys the scenario sets, as YAML."""
    sc = loaded.scenario
    rl, e, wl = sc.rl, sc.rollout.engine, sc.workload
    gpn = 8
    total = sc.cluster.num_gpus
    out: dict = {
        "grpo": {"num_prompts_per_step": wl.num_prompts_per_step, "num_generations_per_prompt": wl.num_generations_per_prompt},
        "policy": {"model_name": hf_id(sc.model.name), "precision": _DTYPE.get(sc.model.dtype or "bf16", "bfloat16"),
                   "generation": {"backend": "vllm", "max_new_tokens": wl.max_new_tokens,
                                  "vllm_cfg": {"tensor_parallel_size": e.tensor_parallel_size,
                                               "gpu_memory_utilization": e.gpu_memory_utilization,
                                               "enforce_eager": e.enforce_eager}}},
        "cluster": {"gpus_per_node": min(gpn, total), "num_nodes": max(1, total // gpn)},
    }
    if e.max_model_len is not None:
        out["policy"]["max_total_sequence_length"] = e.max_model_len
    if e.enable_expert_parallel:
        out["policy"]["generation"]["vllm_cfg"]["expert_parallel_size"] = e.tensor_parallel_size * e.data_parallel_size
    if e.speculative_config is not None:
        s = e.speculative_config
        spec = {"method": s.method, "num_speculative_tokens": s.num_speculative_tokens}
        if s.model:
            spec["model"] = hf_id(s.model)
        if s.draft_tensor_parallel_size:
            spec["draft_tensor_parallel_size"] = s.draft_tensor_parallel_size
        out["policy"]["generation"]["vllm_kwargs"] = {"speculative_config": spec}
    if rl is not None:
        t = rl.training
        out["loss_fn"] = {"reference_policy_kl_penalty": rl.reference_policy_kl_penalty}
        out["policy"]["train_micro_batch_size"] = t.train_micro_batch_size
        if t.train_global_batch_size:
            out["policy"]["train_global_batch_size"] = t.train_global_batch_size
        out["policy"]["sequence_packing"] = {"enabled": t.sequence_packing}
        out["policy"]["megatron_cfg"] = {"enabled": True, "tensor_model_parallel_size": t.tensor_parallel_size,
                                         "pipeline_model_parallel_size": t.pipeline_parallel_size,
                                         "expert_model_parallel_size": t.expert_parallel_size,
                                         "context_parallel_size": t.context_parallel_size,
                                         "sequence_parallel": t.sequence_parallel,
                                         "activation_checkpointing": t.activation_checkpointing}
        if t.expert_tensor_parallel_size is not None:
            out["policy"]["megatron_cfg"]["expert_tensor_parallel_size"] = t.expert_tensor_parallel_size
        if rl.pipeline == "async":
            out["grpo"]["async_grpo"] = {"enabled": True, "max_trajectory_age_steps": rl.max_trajectory_age_steps,
                                         "in_flight_weight_updates": rl.in_flight_weight_updates}
        colocated = rl.pipeline == "sync_colocated"
        gen = {"enabled": colocated}
        if not colocated:
            r = sc.rollout.num_gpus or total // 2
            gen["resources"] = {"gpus_per_node": min(gpn, r), "num_nodes": max(1, r // gpn)}
        out["policy"]["generation"]["colocated"] = gen
    return yaml.safe_dump(out, sort_keys=False)
