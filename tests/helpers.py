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


def rl_policy_scenario(policy: dict | None = None, prompts: int = 4, samples: int = 4, response: int = 600,
                       fixed: bool = True, spec: bool = True, steps: int = 4, seed: int = 1,
                       max_new_tokens: int | None = None) -> LoadedScenario:
    """A small sync colocated RL scenario (Qwen3-1.7B on 2 H100) with ``rl.policy`` = ``policy``."""
    eng = {"max_num_seqs": 64, "max_num_batched_tokens": 4096, "gpu_memory_utilization": 0.6}
    if spec:
        eng["speculative_config"] = eagle(3, 0.6, model="EAGLE3-Qwen3-8B")
    lengths = ({"kind": "fixed", "tokens": response} if fixed
               else {"kind": "lognormal", "mean_tokens": response, "sigma": 0.8})
    rl = {"pipeline": "sync_colocated", "num_steps": steps, "reward_time_s": 0.5,
          "training": {"activation_checkpointing": True}}
    if policy is not None:
        rl["policy"] = policy
    data = {"name": "rl_policy", "seed": seed, "cluster": {"hardware": "h100_sxm", "num_gpus": 2},
            "model": {"name": "Qwen3-1.7B"}, "rollout": {"engine": eng},
            "workload": {"num_prompts_per_step": prompts, "num_generations_per_prompt": samples,
                         "prompt_length": {"kind": "fixed", "tokens": 200}, "response_length": lengths,
                         "max_new_tokens": max_new_tokens or (response if fixed else 4 * response)},
            "rl": rl}
    return LoadedScenario(scenario_from_dict(data, "rl.yaml"), "rl.yaml", Path("."), data)
