"""The trainer costed per operation: every term from the calibrated kernel functions, by hand;
pipeline schedules, overlap of data-parallel traffic, MFU as an output, the MFU / per-op switch."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.errors import ConfigError
from rlsim.hardware import load_profile, ops
from rlsim.models import load_model
from rlsim.training import TrainingConfig, forward_flops, validate_layout
from rlsim.training.cost import trainer_step_cost, uses_per_op
from rlsim.training.perop import (
    BUCKET_PARAMS,
    CATEGORIES,
    MicroBatch,
    expert_gemms,
    gemm_shapes,
    micro_batches,
    pass_cost,
    per_op_step_cost,
    stage_cost,
)

HW = load_profile("gb200")


def _lay(arch, gpus, max_len=8192, **cfg):
    return validate_layout(arch, TrainingConfig(**cfg), gpus, HW, "s.yaml", max_sequence_tokens=max_len)


def _g(m, n, k):
    return float(ops.gemm_time_s(HW, m, n, k, "bf16"))


@pytest.fixture(scope="module")
def q8():
    return load_model("Qwen3-8B")


def test_dense_layer_gemms_are_the_calibrated_gemm_model(q8):
    """Forward GEMMs of one micro-batch = sum of gemm_time_s over the layer's weights (TP-split);
    backward = dgrad + wgrad of each."""
    lay = _lay(q8, 8, tensor_parallel_size=2)
    mb = MicroBatch(tokens=8192.0, pairs=8192 * 8193 / 2, tiles=64.0, max_seq=8192.0)
    st = stage_cost(q8, HW, lay, mb)
    shapes = gemm_shapes(q8, lay, 8192.0)
    assert {n for n, *_ in shapes} == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"}
    per_layer = [(m, n, k) for name, m, n, k in shapes if name != "lm_head"]
    assert dict((name, (n, k)) for name, _, n, k in shapes)["qkv_proj"] == ((32 + 16) * 128 / 2, 4096)
    assert dict((name, (n, k)) for name, _, n, k in shapes)["down_proj"] == (4096, 12288 / 2)
    head = next((m, n, k) for name, m, n, k in shapes if name == "lm_head")
    fwd = 36 * sum(_g(*s) for s in per_layer) + _g(*head)
    bwd = 36 * sum(_g(m, k, n) + _g(k, n, m) for m, n, k in per_layer) + _g(head[0], head[2], head[1]) + _g(head[2], head[1], head[0])
    assert st.forward["gemm"] == pytest.approx(fwd, rel=1e-12)
    assert st.backward["gemm"] == pytest.approx(bwd, rel=1e-12)
    # sequence parallelism: 2 all-gathers + 2 reduce-scatters of t x H x 2 bytes per layer, each direction
    nb = 8192 * 4096 * 2
    tp = 2 * (float(ops.collective_time_s(HW, "all_gather", nb, 2, backend="nccl"))
              + float(ops.collective_time_s(HW, "reduce_scatter", nb, 2, backend="nccl")))
    head_ar = 3 * float(ops.collective_time_s(HW, "all_reduce", 8192 * 4.0, 2))
    assert st.forward["tp_comm"] == pytest.approx(36 * tp + head_ar, rel=1e-12)


def test_attention_from_the_prefill_kernel_with_packed_lengths(q8):
    lay = _lay(q8, 8)
    mb = MicroBatch(tokens=8192.0, pairs=4 * 2048 * 2049 / 2, tiles=4 * 16.0, max_seq=2048.0)
    st = stage_cost(q8, HW, lay, mb)
    flops = mb.pairs * 4 * 128 * 32
    one = float(ops.prefill_attention_time_s(HW, 8192.0, flops, 64.0, 2048.0, 32, 8, 512.0))
    back = float(ops.prefill_attention_time_s(HW, 8192.0, 2.5 * flops, 64.0, 2048.0, 32, 8, 2.5 * 512.0))
    assert st.forward["attention"] == pytest.approx(36 * one, rel=1e-12)
    assert st.backward["attention"] == pytest.approx(36 * back, rel=1e-12)
    # packing four 2k sequences costs far less attention than one 8k sequence
    long = stage_cost(q8, HW, lay, MicroBatch(8192.0, 8192 * 8193 / 2, 64.0, 8192.0))
    assert long.forward["attention"] > 2.5 * st.forward["attention"]


def test_moe_experts_and_all_to_all():
    m = load_model("Qwen3-235B-A22B")
    lay = _lay(m, 64, tensor_parallel_size=4, expert_parallel_size=16, expert_tensor_parallel_size=1,
               activation_checkpointing=True, moe_load_imbalance=1.0)
    t = 8192.0
    st = stage_cost(m, HW, lay, MicroBatch(t, t * (t + 1) / 2, 64.0, t))
    rows = t * 8 * 1 / 4  # routed rows on one GPU: t x topk x etp / tp
    f, b = expert_gemms(HW, m, rows, 1, 16)
    per_expert = rows / 8  # 128 experts / ep 16 local
    assert f == pytest.approx(8 * (_g(per_expert, 2 * 1536, 4096) + _g(per_expert, 4096, 1536)), rel=1e-12)
    assert st.forward["expert_gemm"] == pytest.approx(94 * f, rel=1e-12)
    a2a = 2 * float(ops.collective_time_s(HW, "alltoall", t / 4 * 8 * 4096 * 2, 16))
    assert st.forward["ep_comm"] == pytest.approx(94 * a2a, rel=1e-12)
    assert st.backward["recompute"] == pytest.approx(st.t_f, rel=1e-12)
    worse = stage_cost(m, HW, _lay(m, 64, tensor_parallel_size=4, expert_parallel_size=16, expert_tensor_parallel_size=1,
                                  moe_load_imbalance=1.3), MicroBatch(t, t * (t + 1) / 2, 64.0, t))
    assert worse.forward["expert_gemm"] > 1.2 * st.forward["expert_gemm"]


def test_pipeline_bubble_1f1b_and_interleaved(q8):
    seq = np.full(256, 4096.0)
    p1 = pass_cost(q8, HW, _lay(q8, 16, pipeline_parallel_size=4), seq, train=True, max_len=8192)
    per_mb = p1.stage.t_f + p1.stage.t_b
    assert p1.seconds["pp_bubble"] == pytest.approx(3 * per_mb, rel=1e-12)
    pi = pass_cost(q8, HW, _lay(q8, 16, pipeline_parallel_size=4, pipeline_schedule="interleaved", virtual_pipeline_size=3),
                   seq, train=True, max_len=8192)
    assert pi.seconds["pp_bubble"] == pytest.approx(per_mb, rel=1e-12)  # (pp - 1) / v of a micro-batch
    assert pi.seconds["pp_p2p"] == pytest.approx(3 * p1.seconds["pp_p2p"], rel=1e-12)  # v x the hops
    mb, m = micro_batches(seq, _lay(q8, 16, pipeline_parallel_size=4), 1, 8192, True)
    assert m == p1.micro_batches == 256 * 4096 // 4 // 8192 and mb.tokens == 8192


@pytest.mark.parametrize("cfg,message", [
    ({"pipeline_schedule": "interleaved", "pipeline_parallel_size": 2},
     "s.yaml: rl.training.virtual_pipeline_size = None must be set (>= 2) for pipeline_schedule: interleaved"),
    ({"pipeline_schedule": "interleaved"}, "s.yaml: rl.training.pipeline_schedule = 'interleaved' needs pipeline_parallel_size >= 2"),
    ({"pipeline_schedule": "interleaved", "pipeline_parallel_size": 2, "virtual_pipeline_size": 5},
     "s.yaml: rl.training.virtual_pipeline_size = 5 x pipeline_parallel_size = 2 does not divide num_hidden_layers = 36"),
    ({"virtual_pipeline_size": 2}, "s.yaml: rl.training.virtual_pipeline_size = 2 is only used with pipeline_schedule: interleaved"),
])
def test_schedule_errors(q8, cfg, message):
    with pytest.raises(ConfigError) as err:
        validate_layout(q8, TrainingConfig(**cfg), 16, HW, "s.yaml")
    assert str(err.value) == message


def test_data_parallel_traffic_hides_behind_the_backward(q8):
    seq = np.full(64, 2048.0)
    over = per_op_step_cost(q8, HW, _lay(q8, 32), seq, reference_logprob=False)
    none = per_op_step_cost(q8, HW, _lay(q8, 32, overlap_grad_reduce=False, overlap_param_gather=False), seq,
                            reference_logprob=False)
    assert none.breakdown_s["dp_comm"] == pytest.approx(none.grad_comm_total_s, rel=1e-12)
    # overlapped: the reduce-scatter hides behind the last micro-batch's backward, the all-gather
    # behind the first forward; what they cannot hide, or at least the last 40M-parameter bucket, is exposed
    from rlsim.training.perop import _dp_comm

    lay = _lay(q8, 32)
    rs, ag, buckets = _dp_comm(HW, lay)
    assert buckets == -(-8_190_735_360 // int(BUCKET_PARAMS)) and rs + ag == pytest.approx(over.grad_comm_total_s)
    st = pass_cost(q8, HW, lay, seq, train=True, max_len=2048).stage
    expected = max(rs - st.t_b, rs / buckets) + max(ag - st.t_f, ag / buckets)
    assert over.breakdown_s["dp_comm"] == pytest.approx(expected, rel=1e-9)
    assert over.breakdown_s["dp_comm"] < 0.2 * none.breakdown_s["dp_comm"]
    assert none.total_s - over.total_s == pytest.approx(none.breakdown_s["dp_comm"] - over.breakdown_s["dp_comm"], rel=1e-9)


def test_mfu_is_an_output_and_the_breakdown_adds_up(q8):
    seq = np.random.default_rng(0).integers(500, 8000, 512).astype(float)
    c = per_op_step_cost(q8, HW, _lay(q8, 16, activation_checkpointing=True), seq, reference_logprob=True,
                         max_sequence_tokens=8192)
    assert set(c.breakdown_s) == set(CATEGORIES)
    assert sum(c.breakdown_s.values()) == pytest.approx(c.total_s, rel=1e-12)
    assert c.total_s == pytest.approx(c.logprob_s + c.train_s, rel=1e-12)
    assert c.reference_logprob_s == c.policy_logprob_s > 0
    model = float(forward_flops(q8, seq).sum()) * (3 + 2)
    assert c.model_flops == pytest.approx(model, rel=1e-12)
    assert c.mfu == pytest.approx(model / (c.total_s * 16 * 2.5e15), rel=1e-12)
    assert c.hfu > c.mfu and 0.05 < c.mfu < 0.8
    assert c.breakdown_s["recompute"] > 0 and c.breakdown_s["pp_bubble"] == 0.0
    assert "attention_backward_ratio" in c.assumptions and "moe_load_imbalance" not in c.assumptions  # dense


def test_cost_model_switch(q8):
    assert uses_per_op(TrainingConfig()) and not uses_per_op(TrainingConfig(mfu=0.3))
    assert uses_per_op(TrainingConfig(mfu=0.3, cost_model="per_op")) and not uses_per_op(TrainingConfig(cost_model="mfu"))
    seq = np.full(16, 2048.0)
    assumed = trainer_step_cost(q8, HW, _lay(q8, 8, mfu=0.3), seq, reference_logprob=False)
    assert assumed.mfu == 0.3 and not assumed.breakdown_s
    derived = trainer_step_cost(q8, HW, _lay(q8, 8), seq, reference_logprob=False)
    assert derived.breakdown_s and derived.mfu != 0.3
