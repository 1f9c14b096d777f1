"""``vllm serve`` / ``vllm bench serve`` flags -> a scenario mapping, and the printed report.

Each flag maps to the scenario field of the same concept (vLLM's names; see
``shared/reference/ecosystem_conventions.md``).  A flag left unset keeps the scenario's value,
or rlsim's default when there is no scenario.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from rlsim.errors import ConfigError

__all__ = ["ENGINE_FLAGS", "BENCH_FLAGS", "scenario_from_flags", "render_report", "quantization_dtype"]

#: ``vllm serve`` flag (python name) -> path in the scenario.
ENGINE_FLAGS = {
    "model": "model.name",
    "hardware": "cluster.hardware",
    "tensor_parallel_size": "rollout.engine.tensor_parallel_size",
    "enable_expert_parallel": "rollout.engine.enable_expert_parallel",
    "kv_cache_dtype": "rollout.engine.kv_cache_dtype",
    "max_num_seqs": "rollout.engine.max_num_seqs",
    "max_num_batched_tokens": "rollout.engine.max_num_batched_tokens",
    "max_model_len": "rollout.engine.max_model_len",
    "gpu_memory_utilization": "rollout.engine.gpu_memory_utilization",
    "enforce_eager": "rollout.engine.enforce_eager",
    "enable_prefix_caching": "rollout.engine.enable_prefix_caching",
    "async_scheduling": "rollout.engine.async_scheduling",
    "block_size": "rollout.engine.block_size",
    "speculative_config": "rollout.engine.speculative_config",
    "scheduling_policy": "rollout.engine.scheduling_policy",
}
#: ``vllm bench serve`` flag -> path in the scenario.
BENCH_FLAGS = {
    "num_prompts": "serving.num_prompts",
    "max_concurrency": "serving.max_concurrency",
    "request_rate": "serving.request_rate",
    "burstiness": "serving.burstiness",
    "random_input_len": "serving.random_input_len",
    "random_output_len": "serving.random_output_len",
    "random_range_ratio": "serving.random_range_ratio",
    "random_prefix_len": "serving.random_prefix_len",
    "dataset_path": "serving.dataset_path",
    "seed": "seed",
}

#: ``--quantization`` values -> the model's weight dtype in rlsim.
_QUANTIZATION = {"fp8": "fp8"}


def quantization_dtype(value: str) -> str:
    """rlsim's weight dtype for vLLM's ``--quantization`` value."""
    try:
        return _QUANTIZATION[value]
    except KeyError:
        raise ConfigError(f"--quantization = {value!r} is not simulated (known: {', '.join(sorted(_QUANTIZATION))}; "
                          "a checkpoint's own quantization comes from its config)") from None


def _set(data: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    cur = data
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
    cur[keys[-1]] = value


def scenario_from_flags(base: dict | None, flags: dict[str, Any]) -> dict:
    """A scenario mapping: ``base`` (a scenario's raw mapping, or None) with every given flag
    applied.  Without a base, ``--model`` and ``--hardware`` are required and the cluster has
    exactly the engine's GPUs (TP x DP)."""
    data = copy.deepcopy(base) if base is not None else {"name": "bench"}
    given = {k: v for k, v in flags.items() if v is not None}
    if base is None:
        for need in ("model", "hardware"):
            if need not in given:
                raise ConfigError(f"--{need.replace('_', '-')} is required without a scenario file")
    if "speculative_config" in given:
        given["speculative_config"] = _speculative(given["speculative_config"])
    if "request_rate" in given and given["request_rate"] == float("inf"):
        given["request_rate"] = None
    if "quantization" in given:
        _set(data, "model.dtype", quantization_dtype(given.pop("quantization")))
    dp = given.pop("data_parallel_size", None)
    for name, value in given.items():
        path = ENGINE_FLAGS.get(name) or BENCH_FLAGS.get(name)
        if path is not None:
            _set(data, path, value)
    data.setdefault("serving", {})
    if base is None or dp is not None or "tensor_parallel_size" in given:
        tp = data.get("rollout", {}).get("engine", {}).get("tensor_parallel_size", 1)
        _set(data, "cluster.num_gpus", tp * (dp or 1))
        data.get("rollout", {}).pop("num_gpus", None)
    return data


def _speculative(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--speculative-config = {text!r} is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--speculative-config = {text!r} must be a JSON object")
    return value


def render_report(s: dict) -> str:
    """The report ``vllm bench serve`` prints, from a result with its keys."""
    f, i = "{:<40} {:<10.2f}", "{:<40} {:<10}"
    lines = ["{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="),
             i.format("Successful requests:", s["completed"]), i.format("Failed requests:", s["failed"]),
             i.format("Maximum request concurrency:", str(s["max_concurrency"])),
             f.format("Benchmark duration (s):", s["duration"]),
             i.format("Total input tokens:", s["total_input_tokens"]),
             i.format("Total generated tokens:", s["total_output_tokens"]),
             f.format("Request throughput (req/s):", s["request_throughput"]),
             f.format("Output token throughput (tok/s):", s["output_throughput"]),
             i.format("Peak concurrent requests:", s["max_concurrent_requests"]),
             f.format("Total Token throughput (tok/s):", s["total_token_throughput"])]
    if s.get("spec_decode_num_drafts"):
        lines += ["{s:{c}^{n}}".format(s="Speculative Decoding", n=50, c="-"),
                  f.format("Acceptance rate (%):", s["spec_decode_acceptance_rate"]),
                  f.format("Acceptance length:", s["spec_decode_acceptance_length"]),
                  i.format("Drafts:", s["spec_decode_num_drafts"]), i.format("Draft tokens:", s["spec_decode_draft_tokens"]),
                  i.format("Accepted tokens:", s["spec_decode_accepted_tokens"]), "Per-position acceptance (%):"]
        lines += [f.format(f"  Position {p}:", 100 * r) for p, r in enumerate(s["spec_decode_per_position_acceptance_rates"])]
    titles = {"ttft": "Time to First Token", "tpot": "Time per Output Token (excl. 1st token)",
              "itl": "Inter-token Latency", "e2el": "End-to-end Latency"}
    for m, title in titles.items():
        lines.append("{s:{c}^{n}}".format(s=title, n=50, c="-"))
        lines.append(f.format(f"Mean {m.upper()} (ms):", s[f"mean_{m}_ms"]))
        lines.append(f.format(f"Median {m.upper()} (ms):", s[f"median_{m}_ms"]))
        for key in sorted(k for k in s if k.startswith("p") and k.endswith(f"_{m}_ms")):
            lines.append(f.format(f"P{key[1:].split('_')[0]} {m.upper()} (ms):", s[key]))
    lines.append("=" * 50)
    return "\n".join(lines)
