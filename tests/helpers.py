"""Small scenario builders for speculative-decoding tests."""

from __future__ import annotations

from pathlib import Path

from rlsim.config import LoadedScenario, scenario_from_dict


def scenario(prompts: int = 1, samples: int = 1, prompt_tokens: int = 128, response_tokens: int = 512,
             model: str = "Qwen3-8B", hardware: str = "h100_sxm", gpus: int = 1, tp: int = 1,
             spec: dict | None = None, seed: int = 0, response_dist: dict | None = None, **engine) -> LoadedScenario:
    """One engine (by default) with fixed lengths; ``spec`` is a speculative_config mapping."""
    eng = {"tensor_parallel_size": tp, "max_num_seqs": 512, "max_num_batched_tokens": 16384}
    eng.update(engine)
    if spec is not None:
        eng["speculative_config"] = spec
    data = {
        "name": "t", "seed": seed,
        "cluster": {"hardware": hardware, "num_gpus": gpus},
        "model": {"name": model},
        "rollout": {"engine": eng},
        "workload": {
            "num_prompts_per_step": prompts, "num_generations_per_prompt": samples,
            "prompt_length": {"kind": "fixed", "tokens": prompt_tokens},
            "response_length": response_dist or {"kind": "fixed", "tokens": response_tokens},
            "max_new_tokens": response_tokens,
        },
    }
    return LoadedScenario(scenario_from_dict(data, "test.yaml"), "test.yaml", Path("."), data)


def eagle(k: int, rate: float, **extra) -> dict:
    """EAGLE-3 speculative_config with constant acceptance."""
    d = {"method": "eagle3", "num_speculative_tokens": k, "acceptance": {"kind": "constant", "rate": rate}}
    d.update(extra)
    return d
