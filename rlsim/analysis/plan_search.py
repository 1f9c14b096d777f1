"""The layout screen and the objectives of ``rlsim plan`` (no simulation here).

Screen
------
Before anything is simulated, every GPU kind is screened for the layouts that fit its memory,
with the same checks a simulation runs (:func:`rlsim.sim.resolve` for the rollout engine --
tensor / expert parallel divisibility, weights + activations + KV cache per GPU -- and
:func:`rlsim.training.layout.validate_layout` for the trainer):

* **rollout layouts**: tensor parallel 1, 2, 4, ... up to the NVLink domain (at most 16), each
  with the scenario's expert-parallel setting, and for an MoE model the other setting too;
* **trainer layouts** for a pool of ``t`` GPUs: the scenario's (TP, PP, EP) first, then every
  TP in 1..8, PP in 1..16 and (MoE) EP in 1..64, powers of two, in the order least pipeline
  parallelism, then least tensor parallelism, then least expert parallelism (the least model
  parallelism that fits); the first that fits is used;
* **cluster sizes**: 1, 2, 4, then multiples of 8 up to ``--max-gpus`` (and ``--max-gpus``
  itself), and the smallest cluster the layouts allow (the smallest fitting rollout TP plus the
  smallest training pool with a fitting layout; colocated: that pool) where the grid steps over it.  A size is feasible when some rollout pool (a multiple of a fitting rollout TP)
  leaves a training pool with a fitting trainer layout (colocated: one pool holds both).

Every layout tried is kept with its one-line reason (:class:`Tried`), so ``plan.md`` can say
which constraint excludes each size.

Objectives (``--objective``)
----------------------------
``fewest-gpus`` (default): the fewest GPUs whose step meets the target, ties broken by cost per
step; ``cheapest-step``: the least cost per step meeting the target; ``cheapest-run``: the
least cost of a run of ``--run-steps`` steps meeting the target (its warm-up included: GPUs x
price x (warm-up extra + steps x step time)); ``fastest``: the shortest step (target ignored
for the ranking, reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rlsim.errors import ConfigError, RlsimError

__all__ = ["OBJECTIVES", "check_objective", "cluster_sizes", "Tried", "KindScreen", "screen_kind", "rank_key",
           "TRAIN_KEYS", "layout_label"]

OBJECTIVES = ("fewest-gpus", "cheapest-step", "cheapest-run", "fastest")
TRAIN_KEYS = ("tensor_parallel_size", "pipeline_parallel_size", "expert_parallel_size")


def check_objective(name: str) -> str:
    """``name`` if it is an objective, else a one-line ConfigError listing them."""
    if name not in OBJECTIVES:
        raise ConfigError(f"--objective = {name!r} must be one of {', '.join(OBJECTIVES)}")
    return name


def cluster_sizes(max_gpus: int) -> list[int]:
    """1, 2, 4, then multiples of 8 up to ``max_gpus``, and ``max_gpus`` itself."""
    sizes = {n for n in (1, 2, 4) if n <= max_gpus} | set(range(8, max_gpus + 1, 8)) | {max_gpus}
    return sorted(sizes)


def layout_label(layout: dict) -> str:
    """``TP4 PP1 EP16`` of a trainer layout dict."""
    return "TP{} PP{} EP{}".format(*(layout.get(k, 1) for k in TRAIN_KEYS))


@dataclass(frozen=True)
class Tried:
    """One layout the screen tried: which pool, on how many GPUs, and why it does not fit."""

    kind: str
    pool: str          # "rollout" or "training"
    gpus: int
    layout: str
    ok: bool
    reason: str = ""


@dataclass
class KindScreen:
    """The screen of one GPU kind: fitting rollout layouts, trainer layouts by pool size,
    feasible cluster sizes and, for every infeasible size, the constraint that excludes it."""

    kind: str
    rollout: list[dict] = field(default_factory=list)        # fitting rollout layouts, preferred first
    tried: list[Tried] = field(default_factory=list)
    trainer: dict[int, dict | None] = field(default_factory=dict)
    feasible_sizes: list[int] = field(default_factory=list)
    excluded: dict[int, str] = field(default_factory=dict)

    def trainer_for(self, t: int) -> dict | None:
        return self.trainer.get(t)

    def splits(self, n: int, tp: int, colocated: bool) -> list[int]:
        """Rollout pool sizes (multiples of ``tp``) of an ``n``-GPU cluster whose training pool
        has a fitting trainer layout (colocated: ``[n - n % tp]`` when the trainer fits ``n``)."""
        if colocated:
            r = n - n % tp
            return [r] if r >= tp and self.trainer.get(n) is not None else []
        return [r for r in range(tp, n, tp) if self.trainer.get(n - r) is not None]


def _train_candidates(cfg: dict, moe: bool, t: int) -> list[dict]:
    own = tuple(cfg.get(k, 1) or 1 for k in TRAIN_KEYS)
    pows = [1, 2, 4, 8, 16, 32, 64]
    eps = [e for e in pows if e <= t] if moe else [1]
    grid = [(tp, pp, ep) for pp in pows[:5] for tp in pows[:4] for ep in eps if tp * pp <= t]
    out = [own] + [g for g in grid if g != own]
    return [dict(zip(TRAIN_KEYS, g)) for g in out]


def _reason(err: RlsimError, source: str) -> str:
    """The rule of a one-line error without its ``source:`` prefix."""
    text = str(err)
    for prefix in (f"{source}: ", "None: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def screen_kind(scenario: Path, overrides: list[str], kind: str, max_gpus: int) -> KindScreen:
    """Screen ``kind`` (module docstring).  Raises nothing for a layout that does not fit; a
    scenario that cannot load on ``kind`` at all puts its reason on every size."""
    from rlsim.config import load_scenario
    from rlsim.hardware import load_profile
    from rlsim.sim import resolve
    from rlsim.training.layout import validate_layout

    out = KindScreen(kind)
    sizes = cluster_sizes(max_gpus)
    try:
        hw = load_profile(kind)
        base = load_scenario(scenario, overrides + [f"cluster.hardware={kind}", f"cluster.num_gpus={max_gpus}"])
    except RlsimError as err:
        out.excluded = {n: str(err) for n in sizes}
        return out
    sc = base.scenario
    colocated = sc.rl.pipeline == "sync_colocated"
    eng = sc.rollout.engine
    tp_cap = min(16, hw.topology.nvlink_domain_gpus, max_gpus)
    tps = [t for t in (1, 2, 4, 8, 16) if t <= tp_cap]
    arch = None
    eps = [eng.enable_expert_parallel]
    for tp in tps:
        for ep in eps + ([not eps[0]] if eps else []):
            label = f"TP{tp}" + (" EP" if ep else "")
            ov = [f"cluster.hardware={kind}", f"cluster.num_gpus={max_gpus}", f"rollout.num_gpus={tp}",
                  f"rollout.engine.tensor_parallel_size={tp}", f"rollout.engine.enable_expert_parallel={str(ep).lower()}"]
            if not colocated:
                ov.append("rl.training.num_gpus=1")
            try:
                res = resolve(load_scenario(scenario, overrides + ov))
            except RlsimError as err:
                out.tried.append(Tried(kind, "rollout", tp, label, False, _reason(err, str(scenario))))
                continue
            arch = res.arch
            out.tried.append(Tried(kind, "rollout", tp, label, True))
            out.rollout.append({"tensor_parallel_size": tp, "enable_expert_parallel": ep})
            if not arch.is_moe:
                break
    # prefer the scenario's rollout layout, then the smallest TP with the scenario's EP setting
    out.rollout.sort(key=lambda d: (d["tensor_parallel_size"] != eng.tensor_parallel_size,
                                    d["enable_expert_parallel"] != eng.enable_expert_parallel, d["tensor_parallel_size"]))
    if arch is None:
        from rlsim.models import load_model

        try:
            arch = load_model(sc.model.name)
        except RlsimError as err:
            out.excluded = {n: str(err) for n in sizes}
            return out
    from rlsim.sim.build import _max_model_len  # the engine's length cap sizes the activations

    try:
        max_len = _max_model_len(sc, arch, base.source, base.base_dir)
    except RlsimError:
        max_len = None
    cfg = sc.rl.training
    for t in range(1, max_gpus + 1):
        fit, first, failed = None, None, 0
        for cand in _train_candidates(cfg.model_dump(), arch.is_moe, t):
            try:
                validate_layout(arch, cfg.model_copy(update=cand), t, hw, None, max_sequence_tokens=max_len)
            except RlsimError as err:
                failed += 1
                first = first or Tried(kind, "training", t, layout_label(cand), False, _reason(err, str(scenario)))
                continue
            fit = cand
            break
        if first is not None:  # the scenario's layout (or the first tried) and why it does not fit
            out.tried.append(first)
        if fit is not None:
            out.tried.append(Tried(kind, "training", t, layout_label(fit), True, f"after {failed} that do not fit"))
        elif failed > 1:
            out.tried.append(Tried(kind, "training", t, f"{failed - 1} other layouts", False, "none fits"))
        out.trainer[t] = fit
    fits = [t for t, v in out.trainer.items() if v is not None]
    if out.rollout and fits:  # the smallest cluster of all, which the size grid may step over
        smallest = min(fits) if colocated else min(d["tensor_parallel_size"] for d in out.rollout) + min(fits)
        if smallest <= max_gpus and smallest not in sizes:
            sizes = sorted(sizes + [smallest])
    for n in sizes:
        if any(out.splits(n, d["tensor_parallel_size"], colocated) for d in out.rollout):
            out.feasible_sizes.append(n)
        else:
            out.excluded[n] = _excluded_reason(out, n, colocated, max_gpus)
    return out


def _excluded_reason(s: KindScreen, n: int, colocated: bool, max_gpus: int) -> str:
    """Which constraint excludes an ``n``-GPU cluster of ``s.kind``, in one line."""
    if not s.rollout:
        bad = [t for t in s.tried if t.pool == "rollout"]
        return "no rollout layout fits one engine: " + "; ".join(f"{t.layout}: {t.reason}" for t in bad[-2:])
    tp_min = min(d["tensor_parallel_size"] for d in s.rollout)
    fits = sorted(t for t, v in s.trainer.items() if v is not None)
    if not fits:
        last = [t for t in s.tried if t.pool == "training" and t.gpus == max_gpus]
        why = last[0].reason if last else "no trainer layout fits"
        return f"no trainer layout fits even {max_gpus} GPUs (e.g. {last[0].layout if last else '-'}: {why})"
    t_min = fits[0]
    if colocated:
        if n < t_min:
            return f"the trainer needs at least {t_min} GPUs (colocated: one pool for both)"
        return f"no trainer layout divides {n} GPUs with a rollout TP that fits (TP >= {tp_min})"
    if n < tp_min + t_min:
        # the memory rule at the largest pool below the smallest that fits (more telling than divisibility)
        mem = [t for t in s.tried if t.pool == "training" and not t.ok and t.gpus < t_min and "GiB per GPU" in t.reason]
        below = sorted(mem, key=lambda t: t.gpus)[-1:] or \
            [t for t in s.tried if t.pool == "training" and t.gpus == max(1, n - tp_min) and not t.ok]
        why = f" ({below[0].layout} on {below[0].gpus}: {below[0].reason})" if below else ""
        return (f"needs >= {tp_min} rollout GPUs (smallest rollout TP that fits) + >= {t_min} training GPUs "
                f"(smallest trainer pool with a fitting layout){why}")
    return f"no split of {n} GPUs gives both pools a fitting layout"


def rank_key(objective: str):
    """The sort columns of an objective over the points meeting the target (ascending)."""
    return {"fewest-gpus": ["total_gpus", "cost_per_step_usd", "step_time_s", "point"],
            "cheapest-step": ["cost_per_step_usd", "step_time_s", "point"],
            "cheapest-run": ["cost_per_run_usd", "cost_per_step_usd", "point"],
            "fastest": ["step_time_s", "cost_per_step_usd", "point"]}[objective]
