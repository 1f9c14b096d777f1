"""Resolve a scenario into concrete parts (hardware, model, memory plan, engines) and check
that it can run.  Every user mistake becomes one ConfigError line naming file, field, value, rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlsim.config import LoadedScenario, Scenario
from rlsim.config.vllm import (ASYNC_SPEC_METHODS, ASYNC_WITH_SPEC_SINCE, async_with_spec, default_async_scheduling,
                               default_limits)
from rlsim.cost import ForwardModel, MemoryPlan, plan_memory
from rlsim.cost.forward import shared_forward_model
from rlsim.errors import ConfigError, InfeasibleConfig
from rlsim.hardware import HardwareProfile, load_profile
from rlsim.hardware.kernels import gemm_kernel
from rlsim.models import ModelArch, load_model
from rlsim.serving.requests import dataset_max_lengths
from rlsim.speculation.drafter import Drafter, build_drafter
from rlsim.units import GB, GIB

__all__ = ["Resolved", "resolve"]


@dataclass(frozen=True)
class Resolved:
    """Everything a rollout simulation needs, validated."""

    scenario: Scenario
    source: str
    base_dir: Path
    hw: HardwareProfile
    arch: ModelArch
    weight_dtype: str
    kv_dtype: str
    tp: int
    rollout_gpus: int
    num_engines: int
    memory: MemoryPlan
    max_model_len: int
    drafter: Drafter | None = None
    spec_memory: MemoryPlan | None = None
    dp: int = 1  # data-parallel attention ranks per engine (lock-step with expert parallelism), else 1

    @property
    def lockstep(self) -> bool:
        """Engines are groups of ``dp`` DP-attention ranks sharing expert-parallel MoE layers."""
        return self.dp > 1

    @property
    def speculative(self):
        """The scenario's SpeculativeConfig, or None."""
        return self.scenario.rollout.engine.speculative_config

    def forward_model(self) -> ForwardModel:
        e = self.scenario.rollout.engine
        return shared_forward_model(
            self.arch,
            self.hw,
            tp=self.tp,
            weight_dtype=self.weight_dtype,
            kv_dtype=self.kv_dtype,
            cuda_graphs=not e.enforce_eager,
            max_capture_size=e.max_cudagraph_capture_size,
            expert_parallel=e.enable_expert_parallel,
            dp=self.dp,
            moe_routing_s=e.cpu_overhead.moe_routing_us_per_layer * 1e-6,
            eager_dispatch_s=_eager_dispatch_s(e.cpu_overhead),
            mxfp4_moe_activation=e.mxfp4_moe_activation,
        )


def _eager_dispatch_s(c) -> tuple[float, float]:
    """(per layer, extra per MoE layer) host dispatch of a pass without a CUDA graph, s."""
    return c.eager_layer_us * 1e-6, c.eager_moe_layer_us * 1e-6


def _resolve_path(value: str, base_dir: Path, is_path) -> str:
    if is_path(value):
        p = Path(value).expanduser()
        if not p.is_absolute() and (base_dir / p).exists():
            return str(base_dir / p)
    return value


def _load_hw(sc: Scenario, src: str, base_dir: Path) -> HardwareProfile:
    name = _resolve_path(sc.cluster.hardware, base_dir, lambda v: "/" in v or v.endswith((".yaml", ".yml")))
    hw = load_profile(name, source=src, path="cluster.hardware")
    tables = sc.cluster.kernel_tables
    if tables is not None:
        p = Path(tables).expanduser()
        hw = hw.with_kernel_tables(str(p if p.is_absolute() else base_dir / p), source=src, field="cluster.kernel_tables",
                                    shown=tables)
    return hw


def _load_arch(sc: Scenario, src: str, base_dir: Path) -> ModelArch:
    name = _resolve_path(sc.model.name, base_dir, lambda v: v.endswith(".json") or Path(base_dir / v).is_dir())
    arch = load_model(name, source=src, path="model.name")
    if arch.kind != "target":
        raise ConfigError.at(src, "model.name", sc.model.name,
                             "is an EAGLE-3 draft head, not a policy model (use it as speculative_config.model)")
    return arch


def _check_lengths(sc: Scenario, src: str, base_dir: Path) -> None:
    """Read empirical length files now, so their errors name the scenario field."""
    if sc.workload is None:
        return
    for field in ("prompt_length", "response_length"):
        dist = getattr(sc.workload, field)
        if dist.kind != "empirical":
            continue
        try:
            dist.load(base_dir)
        except ConfigError as err:
            msg = str(err)
            where = f"{src}: workload.{field}"
            raise ConfigError(f"{where}.{msg}" if msg.startswith("path = ") else f"{where}: {msg}") from None


def _check_tp(sc: Scenario, arch: ModelArch, src: str) -> None:
    tp = sc.rollout.engine.tensor_parallel_size
    path = "rollout.engine.tensor_parallel_size"
    if arch.num_attention_heads % tp:
        raise ConfigError.at(src, path, tp, f"does not divide num_attention_heads = {arch.num_attention_heads}")
    kv = arch.num_key_value_heads
    if arch.attention_kind != "mla" and kv % tp and tp % kv:
        raise ConfigError.at(src, path, tp, f"does not divide num_key_value_heads = {kv} (nor is a multiple of it)")
    e = sc.rollout.engine
    ep = tp * lockstep_dp(sc, arch)
    if arch.is_moe and e.enable_expert_parallel and arch.num_experts % ep:
        what = f"tensor_parallel_size x data_parallel_size = {tp} x {e.data_parallel_size}" if ep != tp else None
        if what:
            raise ConfigError.at(src, "rollout.engine.data_parallel_size", e.data_parallel_size,
                                 f"gives {what} = {ep} expert-parallel GPUs, which does not divide num_experts = "
                                 f"{arch.num_experts}")
        raise ConfigError.at(src, path, tp, f"does not divide num_experts = {arch.num_experts} (enable_expert_parallel)")
    if arch.is_moe and e.data_parallel_size > 1 and not e.enable_expert_parallel:
        raise ConfigError.at(src, "rollout.engine.data_parallel_size", e.data_parallel_size,
                             "> 1 with an MoE model needs enable_expert_parallel (vLLM's DP attention + EP; experts "
                             "tensor-parallel across DP ranks are not modelled)")


def lockstep_dp(sc: Scenario, arch: ModelArch) -> int:
    """DP ranks per engine: ``data_parallel_size`` for an MoE model with expert parallelism (the
    ranks step together), else 1 (DP ranks of a dense model are independent engines)."""
    e = sc.rollout.engine
    return e.data_parallel_size if arch.is_moe and e.enable_expert_parallel else 1


def _check_gpus(sc: Scenario, src: str, dp: int) -> tuple[int, int]:
    tp = sc.rollout.engine.tensor_parallel_size
    group = tp * dp
    gpus = sc.rollout.num_gpus or sc.cluster.num_gpus
    if gpus > sc.cluster.num_gpus:
        raise ConfigError.at(src, "rollout.num_gpus", gpus, f"exceeds cluster.num_gpus = {sc.cluster.num_gpus}")
    if gpus % group:
        where = "rollout.num_gpus" if sc.rollout.num_gpus else "cluster.num_gpus"
        rule = f"rollout.engine.tensor_parallel_size = {tp}" if dp == 1 else \
            f"tensor_parallel_size x data_parallel_size = {tp} x {dp}"
        raise ConfigError.at(src, where, gpus, f"is not a multiple of {rule}")
    return gpus, gpus // group


def _max_model_len(sc: Scenario, arch: ModelArch, src: str, base_dir: Path) -> int:
    e, w = sc.rollout.engine, sc.workload
    if e.max_model_len is not None:
        if e.max_model_len > arch.max_position_embeddings:
            raise ConfigError.at(src, "rollout.engine.max_model_len", e.max_model_len,
                                 f"exceeds the model's max_position_embeddings = {arch.max_position_embeddings}")
        if sc.serving is not None:
            _check_serving_fits(sc, src, base_dir, e.max_model_len)
        return e.max_model_len
    if sc.serving is not None:
        prompt, output = dataset_max_lengths(sc.serving, base_dir, src)
        if prompt + output > arch.max_position_embeddings:
            field = "serving.dataset_path" if sc.serving.dataset_path else "serving.random_input_len"
            value = sc.serving.dataset_path or sc.serving.random_input_len
            raise ConfigError.at(src, field, value,
                                 f"gives requests of up to {prompt:,} prompt + {output:,} output tokens, more than "
                                 f"{arch.name}'s context of max_position_embeddings = {arch.max_position_embeddings} "
                                 "(vLLM rejects them)")
        return min(arch.max_position_embeddings, prompt + output)
    prompt_cap = _prompt_cap(w.prompt_length, base_dir)
    if prompt_cap + w.max_new_tokens > arch.max_position_embeddings and w.max_new_tokens >= arch.max_position_embeddings:
        raise ConfigError.at(src, "workload.max_new_tokens", w.max_new_tokens,
                             f"does not fit {arch.name}'s context of max_position_embeddings = "
                             f"{arch.max_position_embeddings} tokens (every response would be cut there; lower it, or "
                             "set rollout.engine.max_model_len to cut responses on purpose)")
    return min(arch.max_position_embeddings, prompt_cap + w.max_new_tokens)


def _check_serving_fits(sc: Scenario, src: str, base_dir: Path, max_len: int) -> None:
    """vLLM rejects a request longer than max_model_len: so does the simulated benchmark."""
    prompt, output = dataset_max_lengths(sc.serving, base_dir, src)
    if prompt + output > max_len:
        raise ConfigError.at(src, "rollout.engine.max_model_len", max_len,
                             f"is shorter than the longest request: {prompt} prompt + {output} output tokens "
                             "(vLLM rejects it)")


def _prompt_cap(dist, base_dir: Path) -> int:
    kind = dist.kind
    if kind == "fixed":
        return dist.tokens
    if kind == "lognormal":
        return dist.max_tokens if dist.max_tokens is not None else int(dist.mean_tokens * 8)
    return int(dist.load(base_dir).max())


def _check_memory(sc: Scenario, arch: ModelArch, hw: HardwareProfile, src: str, tp: int, wdt: str, kvdt: str,
                  max_len: int, drafter: Drafter | None = None, dp: int = 1) -> MemoryPlan:
    e = sc.rollout.engine
    extra_w = drafter.weight_bytes_per_gpu if drafter else 0.0
    extra_kv = drafter.kv_bytes_per_token_per_gpu if drafter else 0.0
    plan = plan_memory(arch, hw.hbm_bytes, e.gpu_memory_utilization, tp, wdt, kvdt, e.activation_reserve_gib * GIB,
                       e.block_size, extra_w, extra_kv, expert_shards=tp * dp if dp > 1 else None)
    with_draft = f" and the {drafter.name} drafter" if drafter and extra_w else ""
    if plan.kv_bytes <= 0 and e.activation_reserve_gib * GIB >= plan.usable_bytes:
        raise InfeasibleConfig.at(
            src, "rollout.engine.activation_reserve_gib", e.activation_reserve_gib,
            f"alone exceeds what {hw.name} x gpu_memory_utilization {e.gpu_memory_utilization:g} leaves per GPU "
            f"({plan.usable_bytes / GIB:.1f} GiB), before any weights or KV cache")
    if plan.kv_bytes <= 0:
        raise InfeasibleConfig.at(
            src, "rollout.engine.tensor_parallel_size", tp,
            f"is too small: {arch.name} weights{with_draft} need {plan.weight_bytes / GB:.1f} GB per GPU ({wdt}) + "
            f"{e.activation_reserve_gib:g} GiB reserve, but {hw.name} x gpu_memory_utilization "
            f"{e.gpu_memory_utilization:g} leaves {plan.usable_bytes / GB:.1f} GB (raise tensor_parallel_size or use fp8)",
        )
    if plan.kv_capacity_tokens < max_len:
        raise InfeasibleConfig.at(
            src, "rollout.engine.gpu_memory_utilization", e.gpu_memory_utilization,
            f"leaves KV cache for {plan.kv_capacity_tokens} tokens per engine{with_draft.replace(' and', ' with')}, "
            f"less than one max-length sequence (max_model_len = {max_len})",
        )
    return plan


def _check_batching(sc: Scenario, src: str, max_len: int) -> None:
    e = sc.rollout.engine
    if e.max_num_batched_tokens < e.max_num_seqs:
        raise ConfigError.at(src, "rollout.engine.max_num_batched_tokens", e.max_num_batched_tokens,
                             f"must be >= max_num_seqs = {e.max_num_seqs} (vLLM's rule)")
    if not e.enable_chunked_prefill and e.max_num_batched_tokens < max_len:
        raise ConfigError.at(src, "rollout.engine.max_num_batched_tokens", e.max_num_batched_tokens,
                             f"must be >= max_model_len = {max_len} without chunked prefill (vLLM's rule)")


def _engine_defaults(sc: Scenario, hw: HardwareProfile) -> Scenario:
    """The scenario with vLLM's defaults filled in where the engine leaves a setting unset
    (rlsim.config.vllm: by GPU memory, usage context and version)."""
    e = sc.rollout.engine
    seqs, tokens = default_limits(hw.hbm_bytes, "serve" if sc.kind == "serving" else "llm")
    fill = {"max_num_seqs": seqs if e.max_num_seqs is None else e.max_num_seqs,
            "max_num_batched_tokens": tokens if e.max_num_batched_tokens is None else e.max_num_batched_tokens,
            "async_scheduling": default_async_scheduling(e.vllm_version, e.speculative_config is not None,
                                                         e.speculative_config and e.speculative_config.method)
            if e.async_scheduling is None else e.async_scheduling,
            "cpu_overhead": e.cpu_overhead.resolved(hw.engine)}
    return sc.model_copy(update={"rollout": sc.rollout.model_copy(update={"engine": e.model_copy(update=fill)})})


def _check_async_spec(sc: Scenario, src: str) -> None:
    """vLLM refuses async scheduling with a drafter it cannot overlap (rlsim.config.vllm)."""
    e = sc.rollout.engine
    spec = e.speculative_config
    if e.async_scheduling and spec is not None and not async_with_spec(e.vllm_version, spec.method):
        why = (f"vLLM runs async scheduling only with {', '.join(ASYNC_SPEC_METHODS)} drafters"
               if spec.method not in ASYNC_SPEC_METHODS else
               f"vLLM {e.vllm_version} predates async scheduling with speculative decoding "
               f"(from {'.'.join(map(str, ASYNC_WITH_SPEC_SINCE))}, assumed)")
        raise ConfigError.at(src, "rollout.engine.async_scheduling", True,
                             f"is not supported with speculative method '{spec.method}': {why}")


def resolve(loaded: LoadedScenario) -> Resolved:
    """Load hardware and model, and check the scenario can run."""
    sc, src, base = loaded.scenario, loaded.source, loaded.base_dir
    hw = _load_hw(sc, src, base)
    _check_async_spec(sc, src)
    sc = _engine_defaults(sc, hw)
    arch = _load_arch(sc, src, base)
    _check_lengths(sc, src, base)
    _check_tp(sc, arch, src)
    dp = lockstep_dp(sc, arch)
    gpus, engines = _check_gpus(sc, src, dp)
    wdt = sc.model.dtype or arch.weight_dtype
    if wdt in ("fp8", "fp8_block"):
        hw.peak_flops(wdt)  # no fp8 on this GPU -> ConfigError naming the profile
    elif wdt != "bf16":
        gemm_kernel(hw, wdt)  # 4-bit checkpoints: vLLM's kernel or its stated fallback (rlsim.hardware.kernels)
    kvdt = _kv_dtype(sc, arch, wdt)
    max_len = _max_model_len(sc, arch, src, base)
    tp = sc.rollout.engine.tensor_parallel_size
    _check_batching(sc, src, max_len)
    plan = _check_memory(sc, arch, hw, src, tp, wdt, kvdt, max_len, dp=dp)
    e = sc.rollout.engine
    drafter = spec_plan = None
    if e.speculative_config is not None:
        drafter = build_drafter(e.speculative_config, arch, hw, tp, kvdt, not e.enforce_eager, wdt, src,
                                e.max_cudagraph_capture_size, e.vllm_version, _eager_dispatch_s(e.cpu_overhead.resolved(hw.engine)),
                                e.mxfp4_moe_activation)
        spec_plan = _check_memory(sc, arch, hw, src, tp, wdt, kvdt, max_len, drafter, dp=dp)
    return Resolved(sc, src, base, hw, arch, wdt, kvdt, tp, gpus, engines, plan, max_len, drafter, spec_plan, dp)


def _kv_dtype(sc: Scenario, arch: ModelArch, wdt: str) -> str:
    """``kv_cache_dtype``; ``auto``: the KV-cache scheme the checkpoint declares (ModelOpt NVFP4
    checkpoints calibrate an fp8 cache, which vLLM then uses; assumed), else bf16."""
    kv = sc.rollout.engine.kv_cache_dtype
    if kv != "auto":
        return kv
    declared = arch.quantization_for(wdt).kv_cache_dtype
    return declared if declared in ("fp8",) else "bf16"
