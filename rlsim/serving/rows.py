"""A measured run as a serving scenario: the checkpoint, the layout, and the benchmark harness.

* **Checkpoint**: the model id and quantisation label name the checkpoint that ran
  (:data:`CHECKPOINTS`: where ``shared/e2e/README.md`` says the label differs from the
  checkpoint -- gpt-oss-120b's "nvfp4" is its MXFP4 release, MiniMax-M2.5's "fp8" is block-scaled,
  Kimi-K2.5's "int4_wo" its own INT4 release; NVFP4 runs use NVIDIA's ModelOpt checkpoints);
  another model loads by its id with the label as the weight dtype.
* **Layout**: ``tp`` x ``attention_dp`` GPUs; experts split ``moe_tp`` x ``moe_ep``: ``moe_ep`` =
  tp x dp with ``moe_tp`` = 1 is vLLM's ``--enable-expert-parallel``; ``moe_tp`` = tp, ``moe_ep`` =
  1 is tensor-parallel experts.  Other splits, and pipeline parallelism, are listed as not
  expressible.
* **Concurrency**: the client keeps ``concurrency x attention_dp`` requests in flight -- the
  measurements' ``concurrency`` is per data-parallel rank (AIConfigurator's convention: every one
  of the 79 attention-DP rows' ids names ``attention_dp`` times its ``concurrency``, e.g.
  ``..._c32_...`` with concurrency 8 and attention_dp 4; the README calls it the client's).
* **Harness** (not recorded with the measurements; assumed, and reported as assumptions):
  ``num_prompts`` = :data:`PROMPTS_PER_CONCURRENCY` x concurrency (InferenceMAX-style sweeps),
  simulated as three waves of ``concurrency`` requests -- the first (sent at once), a middle one
  (the steady state) and the last (the drain) -- whose means are weighted ``1 : N/c - 2 : 1`` to
  stand for the ``N`` requests (:func:`wave_weights`; a closed loop repeats its middle waves);
  output lengths uniform within +-:data:`OUTPUT_SPREAD` of ``osl`` -- strictly equal lengths
  keep a closed loop in lock-step cohorts whose TTFTs the measurements rule out (at
  concurrency 4, measured TTFTs equal one request's prefill); vLLM serve's default limits for
  the GPU; the run's vLLM version -- or, where only the date was recorded, the latest release
  before it (:func:`rlsim.config.vllm.version_at`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlsim.config.vllm import version_at
from rlsim.serving.measured import MeasuredRun

__all__ = ["CHECKPOINTS", "PROMPTS_PER_CONCURRENCY", "OUTPUT_SPREAD", "RowScenario", "row_scenario", "wave_weights",
           "simulated_prompts", "client_concurrency"]

#: Requests per measured run, per unit of concurrency (assumed).
PROMPTS_PER_CONCURRENCY = 10
#: Half-width of the output-length spread around ``osl``, as a fraction (assumed).
OUTPUT_SPREAD = 0.1

#: (HF id, quantisation label) -> the catalog checkpoint that ran.
CHECKPOINTS = {
    ("meta-llama/Llama-3.1-70B", "fp8"): "Llama-3.1-70B-FP8",
    ("meta-llama/Llama-3.1-70B", "nvfp4"): "Llama-3.1-70B-NVFP4",
    ("openai/gpt-oss-120b", "nvfp4"): "gpt-oss-120b",
    ("openai/gpt-oss-120b", "mxfp4"): "gpt-oss-120b",
    ("MiniMaxAI/MiniMax-M2.5", "fp8"): "MiniMax-M2.5",
    ("MiniMaxAI/MiniMax-M2.5", "nvfp4"): "MiniMax-M2.5-NVFP4",
    ("moonshotai/Kimi-K2.5", "int4_wo"): "Kimi-K2.5",
    ("moonshotai/Kimi-K2.5", "nvfp4"): "Kimi-K2.5-NVFP4",
}
#: Quantisation labels -> rlsim weight dtypes for checkpoints not in :data:`CHECKPOINTS`.
_LABEL_DTYPE = {"fp8": "fp8", "nvfp4": "fp4", "fp4": "fp4", "int4_wo": "int4", "bf16": "bf16", "": None}


@dataclass(frozen=True)
class RowScenario:
    """A row's scenario mapping, or why it cannot be expressed (``skip``)."""

    run: MeasuredRun
    data: dict | None
    skip: str | None = None


def _model(run: MeasuredRun) -> dict:
    label = run.moe_quant_mode or run.gemm_quant_mode
    name = CHECKPOINTS.get((run.model, label))
    if name is not None:
        return {"name": name}
    dtype = _LABEL_DTYPE.get(label, label)
    return {"name": run.model} | ({"dtype": dtype} if dtype else {})


def _layout(run: MeasuredRun) -> tuple[dict, str | None]:
    if run.pp != 1:
        return {}, f"pipeline parallelism (pp = {run.pp}) is not modelled"
    engine = {"tensor_parallel_size": run.tp}
    if run.attention_dp > 1:
        engine["data_parallel_size"] = run.attention_dp
    ep_all = run.moe_ep == run.tp * run.attention_dp and run.moe_tp == 1
    if run.moe_ep > 1 and ep_all:
        engine["enable_expert_parallel"] = True
    elif not (run.moe_tp * run.moe_ep == run.tp * run.attention_dp and run.moe_ep == 1) and run.moe_ep > 1:
        return {}, f"expert split moe_tp = {run.moe_tp} x moe_ep = {run.moe_ep} is not one vLLM's flags give"
    return engine, None


def row_scenario(run: MeasuredRun, prompts_per_concurrency: int = PROMPTS_PER_CONCURRENCY,
                 output_spread: float = OUTPUT_SPREAD) -> RowScenario:
    """The serving scenario that reproduces ``run`` (see the module docstring)."""
    engine, skip = _layout(run)
    if skip:
        return RowScenario(run, None, skip)
    version = run.vllm_version or (version_at(run.measured_date) if run.measured_date else None)
    if version is not None:
        engine["vllm_version"] = version
    engine.update(run.serve_flags.get("engine", {}))
    data = {
        "name": run.id or f"{run.group}:{run.isl}x{run.osl}c{run.concurrency}",
        "cluster": {"hardware": run.system, "num_gpus": run.gpus},
        "model": _model(run),
        "rollout": {"engine": engine},
        "serving": {"num_prompts": simulated_prompts(client_concurrency(run), prompts_per_concurrency),
                    "max_concurrency": client_concurrency(run),
                    "random_input_len": run.isl, "random_output_len": run.osl, "random_range_ratio": output_spread},
    }
    return RowScenario(run, data)


def _sent(concurrency: int, prompts_per_concurrency: int) -> int:
    return max(prompts_per_concurrency * concurrency, 8)


def simulated_prompts(concurrency: int, prompts_per_concurrency: int = PROMPTS_PER_CONCURRENCY) -> int:
    """Requests simulated for a row: three waves, or all of them when that is fewer."""
    return min(_sent(concurrency, prompts_per_concurrency), 3 * concurrency) if concurrency * 3 >= 8 else \
        _sent(concurrency, prompts_per_concurrency)


def wave_weights(concurrency: int, prompts_per_concurrency: int = PROMPTS_PER_CONCURRENCY):
    """Per simulated request (in send order), the number of sent requests it stands for."""
    import numpy as np

    n, sim = _sent(concurrency, prompts_per_concurrency), simulated_prompts(concurrency, prompts_per_concurrency)
    w = np.ones(sim)
    if sim < n:
        w[concurrency:2 * concurrency] = (n - 2 * concurrency) / concurrency  # the middle wave repeats
    return w


def client_concurrency(run: MeasuredRun) -> int:
    """Requests the benchmark client keeps in flight (see the module docstring)."""
    return run.concurrency * run.attention_dp
