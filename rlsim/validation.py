"""Validation against published numbers: published vs simulated, the delta, pass/fail per case.

Published results are *validated against*, never used as inputs (except where a case says the
scenario's workload was chosen to match a published *baseline*; its speedups stay predictions).
Sources are the keys of ../shared/reference/published_results.md and hardware_and_models.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Case", "CaseResult", "CASE_NAMES", "cases", "run_validation", "scenarios_dir"]


def scenarios_dir() -> Path:
    """The repository's scenarios/ folder."""
    import rlsim

    return Path(rlsim.__file__).resolve().parent.parent / "scenarios"


@dataclass(frozen=True)
class Case:
    """One published number and how to simulate it; ``low``/``high`` bound the simulated value."""

    name: str
    source: str
    what: str
    published: float
    low: float
    high: float
    simulate: Callable[[], float]
    tolerance: str
    #: "calibration": a number of this case set a parameter (or the scenario was chosen to match
    #: it), so passing shows consistency only; "independent": nothing was fitted to it.
    role: str = "independent"


@dataclass(frozen=True)
class CaseResult:
    case: Case
    simulated: float

    @property
    def delta_pct(self) -> float:
        return 100.0 * (self.simulated - self.case.published) / self.case.published

    @property
    def passed(self) -> bool:
        return self.case.low <= self.simulated <= self.case.high


_CACHE: dict = {}

#: The vLLM release vLLM #20780 ran (filed July 2025; the release then current, assumed).
LEGACY_20780_VERSION = "0.9.2"


def _rl(name: str):
    if name not in _CACHE:
        from rlsim.config import load_scenario
        from rlsim.rl.run import simulate_rl
        from rlsim.sim import resolve

        _CACHE[name] = simulate_rl(resolve(load_scenario(scenarios_dir() / f"{name}.yaml"))).summary
    return _CACHE[name]


def _single(model: str, hardware: str, spec: dict | None = None, async_scheduling: bool = True,
            prompts: int = 1, response: int = 4000, vllm_version: str | None = None) -> dict:
    from rlsim.config import LoadedScenario, scenario_from_dict
    from rlsim.sim import resolve, simulate_rollout

    eng = {"async_scheduling": async_scheduling, "vllm_version": vllm_version}
    if spec:
        eng["speculative_config"] = spec
    data = {"name": "validation", "cluster": {"hardware": hardware, "num_gpus": 1}, "model": {"name": model},
            "rollout": {"engine": eng},
            "workload": {"num_prompts_per_step": prompts, "num_generations_per_prompt": 1,
                         "prompt_length": {"kind": "fixed", "tokens": 128},
                         "response_length": {"kind": "fixed", "tokens": response}, "max_new_tokens": response}}
    res = resolve(LoadedScenario(scenario_from_dict(data, "validation"), "validation", Path("."), data))
    return simulate_rollout(res).summary


def _tpot_ms(model: str, hardware: str, batch: int = 1, async_scheduling: bool = False, response: int = 2000) -> float:
    s = _single(model, hardware, async_scheduling=async_scheduling, prompts=batch, response=response)
    return 1e3 * s["rollout_time_s"] / response


def _leviathan() -> float:
    a, k = 0.7, 3
    s = _single("Qwen3-8B", "h100_sxm", {"method": "eagle3", "num_speculative_tokens": k,
                                         "acceptance": {"kind": "constant", "rate": a}}, response=16000)
    return s["speedup"]["rollout"]


def _leviathan_expected() -> float:
    """E / (k c + 1) with c the simulator's own draft/target step-cost ratio at mid-sequence."""
    from rlsim.config import LoadedScenario, scenario_from_dict
    from rlsim.sim import resolve

    data = {"name": "v", "cluster": {"hardware": "h100_sxm", "num_gpus": 1}, "model": {"name": "Qwen3-8B"},
            "rollout": {"engine": {"speculative_config": {"method": "eagle3", "num_speculative_tokens": 3,
                                                          "acceptance": {"kind": "constant", "rate": 0.7}}}},
            "workload": {"num_prompts_per_step": 1, "num_generations_per_prompt": 1,
                         "prompt_length": {"kind": "fixed", "tokens": 128},
                         "response_length": {"kind": "fixed", "tokens": 16000}, "max_new_tokens": 16000}}
    res = resolve(LoadedScenario(scenario_from_dict(data, "v"), "v", Path("."), data))
    ctx = np.array([8128.0])
    c = float(res.drafter.propose_times_s(1, ctx, 3)[0]) / 3 / float(res.forward_model().decode_times_s(1, ctx)[0])
    return (1 - 0.7 ** 4) / (1 - 0.7) / (3 * c + 1)


def _eagle3_llama() -> float:
    spec = {"method": "eagle3", "model": "EAGLE3-Llama-3.1-8B", "num_speculative_tokens": 4,
            "acceptance": {"kind": "per_position", "rates": [0.78, 0.58, 0.43, 0.29]}}
    return _single("Llama-3.1-8B", "h100_sxm", spec, async_scheduling=False, response=2000,
                   vllm_version=LEGACY_20780_VERSION)["speedup"]["rollout"]


def _decode_step_s(model: str, hardware: str, batch: int, ctx_per_seq: float) -> float:
    """One decode iteration (GPU pass and host time combined as the engine does)."""
    from rlsim.config import LoadedScenario, scenario_from_dict
    from rlsim.sim import resolve
    from rlsim.sim.engines import engine_params

    data = {"name": "v", "cluster": {"hardware": hardware, "num_gpus": 1}, "model": {"name": model},
            "workload": {"num_prompts_per_step": 1, "num_generations_per_prompt": 1,
                         "prompt_length": {"kind": "fixed", "tokens": 128},
                         "response_length": {"kind": "fixed", "tokens": 128}, "max_new_tokens": 128}}
    res = resolve(LoadedScenario(scenario_from_dict(data, "v"), "v", Path("."), data))
    params = engine_params(res)
    gpu = res.forward_model().decode_times_s(batch, np.array([batch * ctx_per_seq]))
    return float(params.step_s(gpu, params.host_s(batch, 0), batch)[0])


def _areal_ratio() -> float:
    """~200-token contexts (the RFC does not state its context length)."""
    return _decode_step_s("Llama-3.1-8B", "h200_sxm", 64, 200.0) / _decode_step_s("Llama-3.1-8B", "h200_sxm", 1, 200.0)


def _lev_case() -> Case:
    expected = _leviathan_expected()
    return Case("leviathan_batch1", "Leviathan et al. 2211.17192 (published_results.md 2)",
                "EAGLE-3 k=3, a=0.7, batch 1 speedup vs E/(kc+1)", expected, expected * 0.97, expected * 1.03,
                _leviathan, "+-3 %")


def cases(names: list[str] | None = None) -> list[Case]:
    """The validation cases (built lazily: some need a resolved scenario)."""
    if names and "leviathan_batch1" not in names:
        lev = None
    else:
        lev = _lev_case()
    share = lambda: (lambda b: b["generation_time_s"] / b["step_time_s"])(_rl("qwen8b_sync")["baseline"])  # noqa: E731
    return [
        Case("8b_sync_generation_share", "arXiv:2604.26779 (S), published_results.md 1",
             "qwen8b_sync baseline: generation share of the step", 0.685, 0.60, 0.75, share,
             "60-75 % (published 65-72 %; workload chosen to match the baseline)", "calibration"),
        Case("8b_sync_generation_speedup", "arXiv:2604.26779 (S): generation 100.0 s -> 56.6 s",
             "qwen8b_sync: generation speedup with EAGLE-3 k=3 (prediction)", 1.77, 1.77 * 0.85, 1.77 * 1.15,
             lambda: _rl("qwen8b_sync")["speedup"]["generation"], "+-15 %"),
        Case("8b_sync_step_speedup", "arXiv:2604.26779 (S): step 151.2 s -> 107.5 s",
             "qwen8b_sync: end-to-end step speedup (prediction)", 1.41, 1.41 * 0.85, 1.41 * 1.15,
             lambda: _rl("qwen8b_sync")["speedup"]["end_to_end"], "+-15 %"),
        Case("8b_sync_non_generation_s", "arXiv:2604.26779 (S): step 151.2 s - generation 100.0 s",
             "qwen8b_sync baseline: step minus generation (weight sync + reward + logprob + train; per-op trainer, "
             "prediction)", 51.2, 51.2 * 0.75, 51.2 * 1.25,
             lambda: (lambda b: b["step_time_s"] - b["generation_time_s"])(_rl("qwen8b_sync")["baseline"]), "+-25 %"),
        lev,
        Case("vllm_v1_llama8b_bs1_tpot_ms", "vLLM #20780 (hardware_and_models.md A3.6/C3)",
             "Llama-3.1-8B batch-1 decode TPOT on H100, ms (sync scheduling)", 7.07, 7.07 * 0.8, 7.07 * 1.2,
             lambda: _tpot_ms("Llama-3.1-8B", "h100_sxm"), "+-20 %"),
        Case("eagle3_llama8b_bs1_speedup", "vLLM #20780: TPOT 7.07 -> 4.05 ms at K=4 (1.75x)",
             "EAGLE-3 on Llama-3.1-8B, batch 1, K=4, AL 3.08, vLLM " + LEGACY_20780_VERSION + " (assumed)", 1.75, 1.75 * 0.8,
             1.75 * 1.2, _eagle3_llama, "+-20 %", "calibration"),
        Case("areal_h200_decode_batch64_over_batch1", "AReaL RFC 545: 8.2 ms @1 vs 8.8 ms @64 (H200)",
             "Llama-3.1-8B decode time ratio batch 64 / batch 1 on H200, ~200-token contexts (assumed)", 8.8 / 8.2, 1.0, 1.25, _areal_ratio,
             "1.00-1.25 (memory-bound: close to flat)"),
        Case("235b_async_end_to_end_vs_sync", "arXiv:2604.26779 (P): 'up to 2.5x' projected at 235B",
             "qwen235b_async: speculation + async vs sync without speculation", 2.5, 1.25, 3.75,
             lambda: _rl("qwen235b_async")["speedup"]["end_to_end_vs_sync"],
             "+-50 % (a projection by a closed simulator with unpublished settings)"),
    ]


def run_validation(names: list[str] | None = None) -> list[CaseResult]:
    """Simulate the selected cases (all by default): the published ones and the end-to-end ones
    (rlsim.validation_e2e, when the measurements are present)."""
    from rlsim.validation_e2e import e2e_cases

    chosen = [c for c in cases(names) + e2e_cases(Case) if c is not None and (not names or c.name in names)]
    return [CaseResult(c, float(c.simulate())) for c in chosen]


#: Names of the cases, in order.
CASE_NAMES = ("8b_sync_generation_share", "8b_sync_generation_speedup", "8b_sync_step_speedup", "8b_sync_non_generation_s",
              "leviathan_batch1",
              "vllm_v1_llama8b_bs1_tpot_ms", "eagle3_llama8b_bs1_speedup", "areal_h200_decode_batch64_over_batch1",
              "235b_async_end_to_end_vs_sync")
