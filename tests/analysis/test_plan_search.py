"""The memory screen and objectives of rlsim plan (no simulation)."""

from __future__ import annotations

import pytest
from sweep_settings import REPO

from rlsim.analysis.plan_search import check_objective, cluster_sizes, rank_key, screen_kind
from rlsim.errors import ConfigError

ASYNC_235B = REPO / "scenarios" / "qwen235b_async.yaml"


def test_objectives():
    assert check_objective("cheapest-run") == "cheapest-run"
    with pytest.raises(ConfigError) as e:
        check_objective("cheap")
    assert str(e.value) == "--objective = 'cheap' must be one of fewest-gpus, cheapest-step, cheapest-run, fastest"
    assert rank_key("fewest-gpus")[0] == "total_gpus" and rank_key("fastest")[0] == "step_time_s"


def test_cluster_sizes():
    assert cluster_sizes(20) == [1, 2, 4, 8, 16, 20]
    assert cluster_sizes(3) == [1, 2, 3]


def test_235b_on_h100_smallest_cluster_and_why_smaller_ones_do_not_fit():
    s = screen_kind(ASYNC_235B, [], "h100_sxm", 144)
    # bf16 weights (470 GB) need rollout TP8 on 80 GB; the trainer's Adam states need 64 GPUs
    assert [d["tensor_parallel_size"] for d in s.rollout] == [8, 8]
    fits = sorted(t for t, v in s.trainer.items() if v is not None)
    assert fits[0] == 64 and s.trainer[64] == {"tensor_parallel_size": 4, "pipeline_parallel_size": 1,
                                                "expert_parallel_size": 64}
    assert s.feasible_sizes[0] == 72
    assert all(n < 72 for n in s.excluded) and set(s.excluded) == {1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64}
    assert s.excluded[64].startswith("needs >= 8 rollout GPUs (smallest rollout TP that fits) + >= 64 training GPUs")
    tp4 = [t for t in s.tried if t.pool == "rollout" and t.layout == "TP4 EP"][0]
    assert not tp4.ok and tp4.reason.startswith("rollout.engine.tensor_parallel_size = 4 is too small: "
                                                "Qwen3-235B-A22B weights need 117.6 GB per GPU")
    # the scenario's trainer layout is tried first at every pool size and its reason kept
    first32 = [t for t in s.tried if t.pool == "training" and t.gpus == 32][0]
    assert first32.layout == "TP4 PP1 EP16" and "GiB per GPU" in first32.reason and "> 72.0 GiB usable" in first32.reason


def test_smallest_cluster_off_the_grid_is_screened():
    s = screen_kind(ASYNC_235B, [], "b200_sxm", 144)
    # TP4 rollout engines fit 180 GB; the smallest trainer pool is 32 GPUs: 36 is not a multiple of 8
    assert s.feasible_sizes[0] == 36 and 32 in s.excluded


def test_unknown_gpu_kind_excludes_every_size():
    s = screen_kind(ASYNC_235B, [], "no_such_gpu", 8)
    assert s.feasible_sizes == [] and set(s.excluded) == {1, 2, 4, 8}
