"""Per-step trainer, drafter-training and weight-sync times of an RL scenario (pure costs).

Resolved before the simpy run: the trainer's step time depends only on the batch's token
counts (rlsim.training.cost), the weight sync only on the model and the pools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlsim.errors import ConfigError
from rlsim.models import load_model
from rlsim.sim.build import Resolved
from rlsim.training.cost import drafter_train_cost, resolve_sync_mode, trainer_step_cost
from rlsim.training.weight_sync import weight_sync
from rlsim.training.layout import validate_layout

__all__ = ["CostPlan", "Pools", "pools", "cost_plan"]


@dataclass(frozen=True)
class Pools:
    """GPU pools of a pipeline."""

    mode: str
    rollout_gpus: int
    training_gpus: int
    colocated: bool


def pools(res: Resolved, mode: str, speculative: bool = False) -> Pools:
    """Rollout and training pool sizes; errors name the fields.  A rollout policy's drafter pool
    (``policy_drafter_pool_gpus``, speculative runs only) trains with the rollout pool in a
    colocated pipeline and is no training pool in a disaggregated one."""
    from rlsim.rl.policies.run import policy_drafter_pool_gpus

    sc, src = res.scenario, res.source
    rl = sc.rl
    drafter = policy_drafter_pool_gpus(res, speculative)
    if mode == "sync_colocated":
        return Pools(mode, res.rollout_gpus, res.rollout_gpus + drafter, True)
    held = res.rollout_gpus + drafter
    training = rl.training.num_gpus if rl.training.num_gpus is not None else sc.cluster.num_gpus - held
    also = f" + drafter GPUs {drafter}" if drafter else ""
    if training <= 0:
        raise ConfigError.at(src, "rollout.num_gpus", res.rollout_gpus,
                             f"{f'with drafter GPUs {drafter} ' if drafter else ''}leaves no GPUs for training in a "
                             f"{mode} pipeline (cluster.num_gpus = {sc.cluster.num_gpus}; set rollout.num_gpus and rl.training.num_gpus)")
    if held + training > sc.cluster.num_gpus:
        raise ConfigError.at(src, "rl.training.num_gpus", training,
                             f"+ rollout GPUs {res.rollout_gpus}{also} exceeds cluster.num_gpus = {sc.cluster.num_gpus}")
    return Pools(mode, res.rollout_gpus, training, False)


@dataclass(frozen=True)
class CostPlan:
    """Seconds per step (arrays over steps) and per batch, with the per-step trainer costs
    (``trainer``: :class:`~rlsim.training.cost.TrainStepCost`, MFU and breakdown) and weight
    syncs (``syncs``: :class:`~rlsim.training.weight_sync.WeightSync`)."""

    logprob_s: np.ndarray
    train_only_s: np.ndarray
    drafter_s: np.ndarray
    train_s: np.ndarray      # logprob + train + drafter training
    sync_s: np.ndarray       # weight sync after each step
    reward_s: float
    pools: Pools
    trainer: list = field(default_factory=list)
    syncs: list = field(default_factory=list)
    layout: object = None


def cost_plan(res: Resolved, batches, mode: str, speculative: bool, probe: int = 1) -> CostPlan:
    """Trainer, drafter and weight-sync costs of every step.

    ``probe`` > 1: the scenario's rollout pool and prompts were divided by ``probe`` (a cheaper
    rollout simulation with the same per-engine load, rlsim.analysis.sensitivity); the trainer
    still trains the full batch (each batch's sequences repeated ``probe`` times) and the
    weight sync sees the full rollout pool."""
    rl = res.scenario.rl
    pl = pools(res, mode, speculative)
    layout = validate_layout(res.arch, rl.training, pl.training_gpus, res.hw, res.source, "rl.training",
                             num_gpus_path="cluster.num_gpus" if pl.colocated else None,
                             max_sequence_tokens=res.max_model_len)
    mode_sync = resolve_sync_mode(rl.weight_sync, pl.colocated, res.source)
    every = rl.drafter.online_training_every_steps
    draft_arch = _draft_arch(res) if (speculative and every) else None
    costs, drafter = [], []
    for t, b in enumerate(batches):
        seq, prompt = np.tile(b.prompt + b.response, probe).astype(np.float64), np.tile(b.prompt, probe)
        costs.append(trainer_step_cost(res.arch, res.hw, layout, seq, reference_logprob=rl.reference_policy_kl_penalty > 0,
                                       prompt_tokens=prompt, max_sequence_tokens=res.max_model_len))
        due = draft_arch is not None and (t + 1) % every == 0
        tokens = float(seq.sum()) * rl.drafter.drafter_train_tokens_frac
        drafter.append(drafter_train_cost(draft_arch, res.hw, layout, tokens) if due else 0.0)
    syncs = [_sync(res, pl, layout, mode_sync, draft_arch is not None and (t + 1) % every == 0 and rl.drafter.sync_drafter_weights,
                   draft_arch, probe) for t in range(len(batches))]
    lp = np.array([c.logprob_s for c in costs])
    tr = np.array([c.train_s for c in costs])
    dr = np.array(drafter)
    return CostPlan(lp, tr, dr, lp + tr + dr, np.array([s.total_s for s in syncs]), rl.reward_time_s, pl,
                    costs, syncs, layout)


def _sync(res: Resolved, pl: Pools, layout, mode_sync: str, with_drafter: bool, draft_arch, probe: int = 1):
    full = float(draft_arch.total_params) * 2.0 if with_drafter else 0.0
    per_gpu = res.drafter.weight_bytes_per_gpu if with_drafter else 0.0
    return weight_sync(res.arch, res.hw, layout, res.scenario.rl.weight_sync, mode=mode_sync, rollout_tp=res.tp,
                       rollout_gpus=pl.rollout_gpus * probe, rollout_weight_dtype=res.weight_dtype,
                       same_nvlink_domain=_same_domain(res, pl, probe), drafter_full_bytes=full,
                       drafter_bytes_per_gpu=per_gpu)


def _same_domain(res: Resolved, pl: Pools, probe: int = 1) -> bool:
    """Both pools inside one NVLink domain (e.g. a GB200 NVL72 rack)."""
    return pl.rollout_gpus * probe + pl.training_gpus <= res.hw.topology.nvlink_domain_gpus


def _draft_arch(res: Resolved):
    spec = res.speculative
    if spec is None or spec.method == "ngram":
        return None
    if spec.method == "mtp":
        return None  # the MTP module trains with the policy (inside the trainer's FLOPs)
    return load_model(spec.model or f"EAGLE3-{res.arch.name}")
