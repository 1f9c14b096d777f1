"""Per-step trainer, drafter-training and weight-sync times of an RL scenario (pure costs).

Resolved before the simpy run: the trainer's step time depends only on the batch's token
counts (rlsim.training.cost), the weight sync only on the model and the pools.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlsim.errors import ConfigError
from rlsim.models import load_model
from rlsim.sim.build import Resolved
from rlsim.training.cost import drafter_train_cost, resolve_sync_mode, train_step_cost, weight_sync_cost
from rlsim.training.layout import validate_layout

__all__ = ["CostPlan", "Pools", "pools", "cost_plan"]


@dataclass(frozen=True)
class Pools:
    """GPU pools of a pipeline."""

    mode: str
    rollout_gpus: int
    training_gpus: int
    colocated: bool


def pools(res: Resolved, mode: str) -> Pools:
    """Rollout and training pool sizes; errors name the fields."""
    sc, src = res.scenario, res.source
    rl = sc.rl
    if mode == "sync_colocated":
        return Pools(mode, res.rollout_gpus, res.rollout_gpus, True)
    training = rl.training.num_gpus if rl.training.num_gpus is not None else sc.cluster.num_gpus - res.rollout_gpus
    if training <= 0:
        raise ConfigError.at(src, "rollout.num_gpus", res.rollout_gpus,
                             f"leaves no GPUs for training in a {mode} pipeline (cluster.num_gpus = {sc.cluster.num_gpus}; "
                             "set rollout.num_gpus and rl.training.num_gpus)")
    if res.rollout_gpus + training > sc.cluster.num_gpus:
        raise ConfigError.at(src, "rl.training.num_gpus", training,
                             f"+ rollout GPUs {res.rollout_gpus} exceeds cluster.num_gpus = {sc.cluster.num_gpus}")
    return Pools(mode, res.rollout_gpus, training, False)


@dataclass(frozen=True)
class CostPlan:
    """Seconds per step (arrays over steps) and per batch."""

    logprob_s: np.ndarray
    train_only_s: np.ndarray
    drafter_s: np.ndarray
    train_s: np.ndarray      # logprob + train + drafter training
    sync_s: np.ndarray       # weight sync after each step
    reward_s: float
    pools: Pools


def cost_plan(res: Resolved, batches, mode: str, speculative: bool) -> CostPlan:
    """Trainer, drafter and weight-sync costs of every step."""
    rl = res.scenario.rl
    pl = pools(res, mode)
    layout = validate_layout(res.arch, rl.training, pl.training_gpus, res.hw, res.source, "rl.training",
                             num_gpus_path="cluster.num_gpus" if pl.colocated else None,
                             max_sequence_tokens=res.max_model_len)
    mode_sync = resolve_sync_mode(rl.weight_sync, pl.colocated, res.source)
    every = rl.drafter.online_training_every_steps
    draft_arch = _draft_arch(res) if (speculative and every) else None
    logprob, train, drafter = [], [], []
    for t, b in enumerate(batches):
        cost = train_step_cost(res.arch, res.hw, layout, (b.prompt + b.response).astype(np.float64),
                               reference_logprob=rl.reference_policy_kl_penalty > 0, prompt_tokens=b.prompt,
                               max_sequence_tokens=res.max_model_len)
        logprob.append(cost.logprob_s)
        train.append(cost.train_s)
        due = draft_arch is not None and (t + 1) % every == 0
        tokens = float((b.prompt + b.response).sum()) * rl.drafter.drafter_train_tokens_frac
        drafter.append(drafter_train_cost(draft_arch, res.hw, layout, tokens) if due else 0.0)
    sync = []
    extra = res.drafter.weight_bytes_per_gpu if (draft_arch is not None and rl.drafter.sync_drafter_weights) else 0.0
    for t in range(len(batches)):
        due = draft_arch is not None and (t + 1) % every == 0
        ws = weight_sync_cost(
            res.arch, res.hw, mode=mode_sync, rollout_tp=res.tp,
            rollout_engines=res.num_engines, rollout_weight_dtype=res.weight_dtype, training_gpus=pl.training_gpus,
            cfg=rl.weight_sync, same_nvlink_domain=_same_domain(res, pl), extra_bytes=extra if due else 0.0)
        sync.append(ws.total_s)
    lp, tr, dr = np.array(logprob), np.array(train), np.array(drafter)
    return CostPlan(lp, tr, dr, lp + tr + dr, np.array(sync), rl.reward_time_s, pl)


def _same_domain(res: Resolved, pl: Pools) -> bool:
    """Both pools inside one NVLink domain (e.g. a GB200 NVL72 rack)."""
    return pl.rollout_gpus + pl.training_gpus <= res.hw.topology.nvlink_domain_gpus


def _draft_arch(res: Resolved):
    spec = res.speculative
    if spec is None or spec.method == "ngram":
        return None
    if spec.method == "mtp":
        return None  # the MTP module trains with the policy (inside the trainer's FLOPs)
    return load_model(spec.model or f"EAGLE3-{res.arch.name}")
