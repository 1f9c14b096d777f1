"""rlsim import nemo-rl / verl: GRPO configs (keys from the frameworks' documented examples) ->
scenarios that validate, with every key reported used, ignored or unknown."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.config.importers import flatten, import_config
from rlsim.config.loader import scenario_from_dict
from rlsim.errors import ConfigError

runner = CliRunner()

# NeMo-RL examples/configs/grpo_math_1B.yaml (abridged: the keys that matter plus a few that do not)
NEMO_1B = """
grpo:
  num_prompts_per_step: 32
  num_generations_per_prompt: 16
  max_num_steps: 1000000
  normalize_rewards: true
  use_leave_one_out_baseline: true
  val_period: 10
  seed: 42
loss_fn:
  reference_policy_kl_penalty: 0.01
  ratio_clip_min: 0.2
  use_importance_sampling_correction: false
policy:
  model_name: "Qwen/Qwen3-1.7B"
  train_global_batch_size: 512
  train_micro_batch_size: 4
  logprob_batch_size: 4
  max_total_sequence_length: 512
  precision: "bfloat16"
  dtensor_cfg: {enabled: true, cpu_offload: false, sequence_parallel: false, activation_checkpointing: false,
                tensor_parallel_size: 1, context_parallel_size: 1}
  sequence_packing: {enabled: true, algorithm: modified_first_fit_decreasing}
  optimizer: {name: torch.optim.AdamW, kwargs: {lr: 5.0e-6}}
  generation:
    backend: "vllm"
    max_new_tokens: ${policy.max_total_sequence_length}
    temperature: 1.0
    top_p: 1.0
    vllm_cfg:
      tensor_parallel_size: 1
      pipeline_parallel_size: 1
      gpu_memory_utilization: 0.6
      max_model_len: ${policy.max_total_sequence_length}
      enforce_eager: false
      async_engine: false
    colocated: {enabled: true, resources: {gpus_per_node: null, num_nodes: null}}
data: {max_input_seq_length: 512, dataset_name: OpenMathInstruct-2}
logger: {wandb_enabled: false}
checkpointing: {enabled: true, checkpoint_dir: results/grpo}
cluster: {gpus_per_node: 8, num_nodes: 1}
my_custom_section: {knob: 3}
"""

# NeMo-RL async GRPO on Megatron with an EAGLE-3 drafter (grpo_math_8B_megatron.yaml + the async
# and speculative-decoding guides), generation on 2 dedicated nodes
NEMO_8B_ASYNC = """
grpo:
  num_prompts_per_step: 64
  num_generations_per_prompt: 16
  async_grpo: {enabled: true, max_trajectory_age_steps: 1, in_flight_weight_updates: true}
loss_fn: {reference_policy_kl_penalty: 0.0, use_importance_sampling_correction: true}
policy:
  model_name: "Qwen/Qwen3-8B"
  train_global_batch_size: 1024
  train_micro_batch_size: 1
  max_total_sequence_length: 8192
  dtensor_cfg: {enabled: false, tensor_parallel_size: 4}
  megatron_cfg: {enabled: true, tensor_model_parallel_size: 2, pipeline_model_parallel_size: 1,
                 context_parallel_size: 1, sequence_parallel: true, activation_checkpointing: true}
  generation:
    backend: vllm
    max_new_tokens: 8192
    vllm_cfg: {tensor_parallel_size: 1, gpu_memory_utilization: 0.85}
    vllm_kwargs:
      speculative_config: {method: eagle3, model: "AngelSlim/Qwen3-8B_eagle3", num_speculative_tokens: 3,
                           draft_tensor_parallel_size: 1}
    colocated: {enabled: false, resources: {gpus_per_node: 8, num_nodes: 2}}
cluster: {gpus_per_node: 8, num_nodes: 4}
"""

# verl examples/grpo_trainer/run_qwen2-7b.sh (Hydra overrides written as YAML)
VERL_7B = """
algorithm: {adv_estimator: grpo, use_kl_in_reward: false}
data: {train_files: gsm8k/train.parquet, train_batch_size: 1024, max_prompt_length: 512, max_response_length: 1024,
       filter_overlong_prompts: true}
actor_rollout_ref:
  model: {path: Qwen/Qwen3-8B, use_remove_padding: true, enable_gradient_checkpointing: true}
  actor:
    optim: {lr: 1.0e-6}
    ppo_mini_batch_size: 256
    ppo_micro_batch_size_per_gpu: 40
    use_kl_loss: true
    kl_loss_coef: 0.001
    kl_loss_type: low_var_kl
    entropy_coeff: 0
    fsdp_config: {param_offload: false, optimizer_offload: false}
  rollout:
    log_prob_micro_batch_size_per_gpu: 40
    tensor_model_parallel_size: 2
    name: vllm
    gpu_memory_utilization: 0.6
    n: 5
  ref: {log_prob_micro_batch_size_per_gpu: 40, fsdp_config: {param_offload: true}}
trainer: {critic_warmup: 0, logger: [console, wandb], project_name: verl_grpo_example_gsm8k, n_gpus_per_node: 8,
          nnodes: 1, save_freq: 20, test_freq: 5, total_epochs: 15}
"""

# verl examples/grpo_trainer/run_qwen3moe-30b_megatron.sh (Megatron actor, MoE)
VERL_30B_MOE = """
algorithm: {adv_estimator: grpo}
data: {train_batch_size: 512, max_prompt_length: 1024, max_response_length: 2048}
actor_rollout_ref:
  model: {path: Qwen/Qwen3-30B-A3B}
  actor:
    strategy: megatron
    ppo_mini_batch_size: 128
    ppo_micro_batch_size_per_gpu: 4
    use_kl_loss: false
    megatron: {tensor_model_parallel_size: 4, pipeline_model_parallel_size: 1, expert_model_parallel_size: 8,
               param_offload: false}
  rollout: {name: vllm, tensor_model_parallel_size: 4, n: 8, gpu_memory_utilization: 0.7, enforce_eager: false,
            some_new_vllm_knob: 1}
trainer: {n_gpus_per_node: 8, nnodes: 2}
"""


def _keys(rep, which: str) -> set[str]:
    return {t[0] for t in getattr(rep, which)}


def _every_key_reported(cfg: str, rep) -> None:
    flat = set(flatten(yaml.safe_load(cfg)))
    reported = _keys(rep, "used") | _keys(rep, "ignored") | _keys(rep, "unknown")
    assert flat <= reported | {"actor_rollout_ref.actor.ppo_mini_batch_size"}, flat - reported


def test_nemo_rl_1b_colocated():
    rep = import_config("nemo-rl", yaml.safe_load(NEMO_1B), "h100_sxm")
    sc = rep.scenario
    assert sc["model"]["name"] == "Qwen3-1.7B" and sc["cluster"] == {"num_gpus": 8, "hardware": "h100_sxm"}
    assert sc["rl"]["pipeline"] == "sync_colocated" and sc["rl"]["reference_policy_kl_penalty"] == 0.01
    assert sc["workload"]["max_new_tokens"] == 512 and sc["rollout"]["engine"]["max_model_len"] == 512  # ${...} resolved
    assert sc["workload"]["num_prompts_per_step"] == 32 and sc["seed"] == 42
    assert rep.unknown == [("my_custom_section.knob", 3)]
    ign = {k: w for k, _, w in rep.ignored}
    assert ign["policy.optimizer.kwargs.lr"] == "the optimiser's maths is in the trainer model's fixed Adam cost"
    assert ign["policy.generation.temperature"] == "sampling: response lengths come from workload.response_length"
    assert ign["grpo.max_num_steps"].startswith("rlsim simulates until the step time is steady")
    assert ("workload.response_length.mean_tokens", 256,
            "assumed: half of max_new_tokens, at most 3,500 (scenarios/qwen8b_sync.yaml)") in rep.defaults
    _every_key_reported(NEMO_1B, rep)
    scenario_from_dict(sc)


def test_nemo_rl_8b_async_megatron_with_eagle3():
    rep = import_config("nemo-rl", yaml.safe_load(NEMO_8B_ASYNC), "gb200")
    sc = rep.scenario
    assert sc["rl"]["pipeline"] == "async" and sc["rl"]["max_trajectory_age_steps"] == 1
    assert sc["cluster"]["num_gpus"] == 32 and sc["rollout"]["num_gpus"] == 16 and sc["rl"]["training"]["num_gpus"] == 16
    assert sc["rl"]["training"]["tensor_parallel_size"] == 2  # megatron_cfg, not the disabled dtensor_cfg's 4
    assert ("policy.dtensor_cfg.tensor_parallel_size", 4, "the dtensor_cfg trainer backend is not enabled") in rep.ignored
    spec = sc["rollout"]["engine"]["speculative_config"]
    assert spec["method"] == "eagle3" and spec["num_speculative_tokens"] == 3
    assert spec["acceptance"] == {"kind": "constant", "rate": 0.68}
    assert any(t == "rollout.engine.speculative_config.acceptance" and "assumed" in w for t, _, w in rep.defaults)
    assert rep.unknown == []
    _every_key_reported(NEMO_8B_ASYNC, rep)
    scenario_from_dict(sc)


def test_verl_7b_fsdp():
    rep = import_config("verl", yaml.safe_load(VERL_7B))
    sc = rep.scenario
    assert sc["rl"]["pipeline"] == "sync_colocated" and sc["cluster"]["num_gpus"] == 8
    assert sc["workload"]["num_prompts_per_step"] == 1024 and sc["workload"]["num_generations_per_prompt"] == 5
    assert sc["rl"]["training"]["train_global_batch_size"] == 1280  # 256 prompts x n = 5
    assert sc["rl"]["reference_policy_kl_penalty"] == 0.001 and sc["rollout"]["engine"]["tensor_parallel_size"] == 2
    assert sc["workload"]["prompt_length"]["max_tokens"] == 512 and sc["workload"]["max_new_tokens"] == 1024
    assert rep.unknown == []
    assert ("actor_rollout_ref.ref.fsdp_config.param_offload", True,
            "the reference policy's logprob pass follows the KL setting") in rep.ignored
    _every_key_reported(VERL_7B, rep)
    scenario_from_dict(sc)


def test_verl_30b_moe_megatron():
    rep = import_config("verl", yaml.safe_load(VERL_30B_MOE))
    sc = rep.scenario
    assert sc["model"]["name"] == "Qwen3-30B-A3B" and sc["cluster"]["num_gpus"] == 16
    t = sc["rl"]["training"]
    assert (t["tensor_parallel_size"], t["pipeline_parallel_size"], t["expert_parallel_size"]) == (4, 1, 8)
    assert sc["rl"]["reference_policy_kl_penalty"] == 0.0
    assert ("actor_rollout_ref.rollout.some_new_vllm_knob", 1, "rollout detail not modelled") in rep.ignored
    _every_key_reported(VERL_30B_MOE, rep)
    scenario_from_dict(sc)


def test_errors():
    with pytest.raises(ConfigError) as e:
        import_config("openrlhf", {})
    assert str(e.value) == "import: framework 'openrlhf' must be one of nemo-rl, verl"
    with pytest.raises(ConfigError) as e:
        import_config("verl", {"actor_rollout_ref": {"rollout": {"name": "sglang"}, "model": {"path": "x"}}})
    assert str(e.value) == "import: actor_rollout_ref.rollout.name = 'sglang': only vllm rollouts are modelled"


def test_cli_import_writes_a_scenario_that_runs(tmp_path):
    cfg, out = tmp_path / "grpo.yaml", tmp_path / "s.yaml"
    cfg.write_text(NEMO_1B)
    r = runner.invoke(app, ["import", "nemo-rl", str(cfg), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "unknown (1):\n  my_custom_section.knob = 3" in r.stderr and "used (" in r.stderr
    assert yaml.safe_load(out.read_text())["model"]["name"] == "Qwen3-1.7B"
