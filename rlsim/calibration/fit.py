"""Fit a hardware profile's efficiency parameters to measured kernel latencies.

Each *key* (``gemm:bf16``, ``moe:fp8``, ``nccl_all_reduce``, ...) selects rows of the tidy
frame and names the profile parameters that explain them (:func:`key_specs`).  The fit is a
deterministic bounded least-squares problem on log time (``scipy.optimize.least_squares``,
trust-region reflective, a fixed set of starting points, the best kept): residual
``log(predicted) - log(measured)`` where ``predicted`` is :func:`rlsim.calibration.predict.predict`
-- the simulator's own op functions.  Bounds keep every parameter physical: efficiencies in
[0.005, 1], latencies and per-row costs >= 0.

Held-out error: grouped k-fold (default 5 folds) where a group is one *shape* (a GEMM's
``(n, k)``; a MoE layer shape and split; an attention head configuration; a collective's
message size), so every held-out row's shape was never seen by the fit that predicts it.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from rlsim.calibration import collective_fit as cfit
from rlsim.calibration.predict import predict
from rlsim.errors import CalibrationError
from rlsim.hardware import ops
from rlsim.hardware.kernels import params_key
from rlsim.hardware.profile import HardwareProfile, MoeByDtype

__all__ = ["Param", "KeySpec", "key_specs", "fit_key", "fit_profile", "errors_of", "FitResult",
           "set_params", "get_param", "cv_groups"]

N_FOLDS = 5
EFF_MIN = 0.005
MAX_LATENCY_US = 1e4
MAX_SPEEDUP = 10.0


@dataclass(frozen=True)
class Param:
    """One fitted number at ``path`` in the profile's data (dict keys / group sizes)."""

    path: tuple
    kind: str  # "eff" in (0, 1], "frac" in [0, 1], "speedup" in [1, 10], "nonneg" >= 0 (us, ns or tokens)

    @property
    def name(self) -> str:
        return ".".join(str(p) for p in self.path)

    def bounds(self) -> tuple[float, float]:
        if self.kind == "eff":
            return EFF_MIN, 1.0
        if self.kind == "speedup":
            return 1.0, MAX_SPEEDUP
        return (0.0, 1.0) if self.kind == "frac" else (0.0, MAX_LATENCY_US)


@dataclass
class KeySpec:
    key: str
    select: Callable[[pd.DataFrame], np.ndarray]
    params: list[Param]
    group_cols: list[str]
    starts: list[dict[str, float]] = field(default_factory=list)
    #: discrete parameters (path -> candidate values): the fit keeps the candidate with the
    #: lowest in-sample cost; held-out folds reuse it
    choices: dict[tuple, list] = field(default_factory=dict)
    #: applied to the profile data before fitting (e.g. keep only the measured group sizes)
    prepare: Callable[[dict], dict] | None = None
    #: parameters kept only if they lower the in-sample cost by ``optional_min_gain`` (e.g.
    #: NVLS), with their starting values; else they are set to None
    optional: list[Param] = field(default_factory=list)
    optional_start: tuple = ()
    optional_min_gain: float = 0.0


def get_param(data: dict, path: tuple) -> Any:
    cur: Any = data
    for p in path:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            return None
    return cur


def set_params(data: dict, params: list[Param], x: np.ndarray) -> dict:
    """A copy of profile ``data`` with ``params`` set to ``x`` (scalars become maps for group sizes)."""
    out = copy.deepcopy(data)
    for p, v in zip(params, x):
        cur = out
        for i, key in enumerate(p.path[:-1]):
            nxt = cur.get(key)
            if not isinstance(nxt, dict):
                # a scalar per-group-size parameter becomes a map of the fitted sizes only
                nxt = {}
                cur[key] = nxt
            cur = nxt
        cur[p.path[-1]] = float(v)
    return out


def _profile(data: dict) -> HardwareProfile:
    return HardwareProfile.model_validate(data)


def _sel(op: str, dtype: str | None = None, **eq) -> Callable[[pd.DataFrame], np.ndarray]:
    def f(df: pd.DataFrame) -> np.ndarray:
        m = (df["op_class"] == op).to_numpy().copy()
        if dtype is not None:
            m &= (df["dtype"] == dtype).to_numpy()
        for c, v in eq.items():
            m &= (df[c].fillna(v if c == "distribution" else np.nan) == v).to_numpy()
        return m

    return f


def _half(op: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def f(df: pd.DataFrame) -> np.ndarray:
        return ((df["op_class"] == op) & df["dtype"].isin(["bf16", "fp16"])).to_numpy()

    return f


def _moe_rows(d: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """Balanced-routing fused-MoE rows whose dtype is timed by profile entry ``moe.<d>``."""
    def f(df: pd.DataFrame) -> np.ndarray:
        keys = df["dtype"].fillna("").map(params_key)
        return ((df["op_class"] == "moe") & (keys == d) & (df["distribution"].fillna("balanced") == "balanced")).to_numpy()

    return f


def _full_attention(op: str, dtype: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """Attention rows of ``dtype`` KV without a sliding window (window rows are a check of the
    window physics with parameters fitted on full attention, never fitted)."""
    def f(df: pd.DataFrame) -> np.ndarray:
        return ((df["op_class"] == op) & (df["dtype"] == dtype) & (df["window_size"].fillna(0) == 0)).to_numpy()

    return f


#: Profile entries a key fits that a profile may not have yet, and the entry they start from
#: (a copy): the new MoE dtypes from bf16, the fp8-KV attention kernels from the bf16-KV ones.
START_FROM = {
    "moe:mxfp4": (("efficiency", "moe", "mxfp4"), ("efficiency", "moe", "bf16")),
    "moe:mxfp4_mxfp8": (("efficiency", "moe", "mxfp4_mxfp8"), ("efficiency", "moe", "bf16")),
    "moe:int4": (("efficiency", "moe", "int4"), ("efficiency", "moe", "bf16")),
    "moe:fp4": (("efficiency", "moe", "fp4"), ("efficiency", "moe", "bf16")),
    "generation_attention:fp8": (("efficiency", "decode_attention_fp8"), ("efficiency", "decode_attention")),
    "context_attention:fp8": (("efficiency", "prefill_attention_fp8"), ("efficiency", "prefill_attention")),
}


#: GEMM parameters of fp8_block that the fit copies from the bf16 fit (see _gemm_spec).
FP8_BLOCK_FROM_BF16 = ("latency_us", "k_loop_ns", "overlap_loss")
#: Candidate per-expert row tiles of the fused-MoE kernels (vLLM's BLOCK_SIZE_M configs).
MOE_BLOCK_M_CHOICES = (16, 32, 64, 128)
#: Starting points of the GEMM fit besides the profile's values (helper of _gemm_spec).
_GEMM_STARTS = [{"compute_eff": 0.7, "mem_eff": 0.8, "latency_us": 3.0, "k_loop_ns": 0.5, "overlap_loss": 0.3,
                 "act_quant_row_ns": 3.0, "act_quant_pass_ns": 3.0},
                {"compute_eff": 0.7, "mem_eff": 0.8, "latency_us": 3.0, "k_loop_ns": 0.5, "overlap_loss": 0.0,
                 "act_quant_row_ns": 1.0, "act_quant_pass_ns": 1.0}]


def _gemm_spec(df: pd.DataFrame, d: str) -> KeySpec:
    """GEMM parameters for weight dtype ``d``.  fp8_block: the eager harness adds a floor and a
    constant (traces README); a GPU latency cannot be told apart from that constant, so
    ``latency_us``, ``k_loop_ns`` and ``overlap_loss`` stay as the bf16 fit left them (copied by
    :func:`fit_profile`), the per-pass quantisation cost stays 0 (per-token-group scales), and
    the constant goes to the harness."""
    base = ("efficiency", "gemm", d)
    names = [("compute_eff", "eff"), ("mem_eff", "eff"), ("latency_us", "nonneg"), ("k_loop_ns", "nonneg"),
             ("overlap_loss", "frac"), ("act_quant_row_ns", "nonneg"), ("act_quant_pass_ns", "nonneg")]
    if d != "fp8_block":  # fp16 kernels (Vidur, older stacks) share bf16's peak and parameters
        select = _half("gemm") if d == "bf16" else _sel("gemm", d)
        return KeySpec(f"gemm:{d}", select, [Param(base + (n,), k) for n, k in names], ["n", "k"], _GEMM_STARTS)
    ps = [Param(base + (n,), k) for n, k in names if n in ("compute_eff", "mem_eff", "act_quant_row_ns")]
    ps += [Param(("calibration", "benchmark_effects", n), "nonneg") for n in
           ("gemm_fp8_block_host_floor_us", "gemm_fp8_block_host_floor_large_m_us",
            "gemm_fp8_block_host_floor_unaligned_extra_us", "gemm_fp8_block_harness_extra_us")]
    return KeySpec(f"gemm:{d}", _sel("gemm", d), ps, ["n", "k"], _floor_starts(df[_sel("gemm", d)(df)]))


def key_specs(df: pd.DataFrame) -> list[KeySpec]:
    """The keys this data can fit, in fitting order (decode before prefill: one-token prompts
    are predicted by the decode formula; the decode FLOP term, which uses the prefill compute
    efficiency, is negligible for one-token queries)."""
    specs: list[KeySpec] = []
    have = set(zip(df["op_class"], df["dtype"].fillna("").map(params_key)))
    for d in ("bf16", "fp8", "fp8_block", "fp4"):
        if ("gemm", d) in have or (d == "bf16" and ("gemm", "fp16") in have):
            specs.append(_gemm_spec(df, d))
    for d in MoeByDtype.model_fields:  # every fused-MoE entry of the profile schema
        if ("moe", d) in have:
            base = ("efficiency", "moe", d)
            ps = [Param(base + (n,), k) for n, k in
                  (("compute_eff", "eff"), ("mem_eff", "eff"), ("latency_us", "nonneg"), ("per_routed_token_us", "nonneg"),
                   ("per_expert_us", "nonneg"))]
            specs.append(KeySpec(f"moe:{d}", _moe_rows(d), ps,
                                 ["hidden_size", "inter_size", "num_experts", "topk", "moe_tp", "moe_ep"],
                                 choices={base + ("block_m_tokens",): list(MOE_BLOCK_M_CHOICES)}))
    specs += _attention_specs(have)
    for op in cfit.NCCL_OPS:
        spec = nccl_spec(df, op)
        if spec is not None:
            specs.append(spec)
    if (df["op_class"] == "elementwise").any():
        base = ("efficiency", "elementwise")
        specs.append(KeySpec("elementwise", _sel("elementwise"), [Param(base + ("mem_eff",), "eff"),
                                                                   Param(base + ("latency_us",), "nonneg")], ["nbytes"]))
    sub = df[df["op_class"] == "custom_all_reduce"]
    if len(sub):
        base = ("collectives", "custom_all_reduce")
        names = [("alpha_us", "nonneg"), ("barrier_per_peer_us", "nonneg"), ("oneshot_link_eff", "eff"),
                 ("oneshot_iter_us", "nonneg")]
        if ops.custom_all_reduce_two_shot(sub["nbytes"].to_numpy(float), 4).any() and (sub["num_gpus"] > 2).any():
            names += [("twoshot_extra_us", "nonneg"), ("twoshot_link_eff", "eff")]
        if (sub["backend"] == "eager").any():
            names += [("eager_floor_us", "nonneg"), ("eager_extra_us", "nonneg")]
            if (sub["num_gpus"] > 4).any():  # the two-shot floor shows at 8 GPUs only
                names += [("eager_twoshot_floor_per_peer_us", "nonneg")]
        ps = [Param(base + (n,), k) for n, k in names]
        specs.append(KeySpec("custom_all_reduce", _sel("custom_all_reduce"), ps, ["nbytes"]))
    return specs


def _attention_specs(have: set) -> list[KeySpec]:
    """Decode / prefill attention per KV dtype (bf16 first: the fp8 keys start from its fit;
    decode before prefill: one-token prompts take the decode formula)."""
    attn = ["num_heads", "num_kv_heads", "head_dim", "seq_len"]
    decode = (("mem_eff", "eff"), ("cta_us", "nonneg"), ("latency_us", "nonneg"), ("head_dim_frac", "frac"))
    prefill = (("compute_eff", "eff"), ("latency_us", "nonneg"), ("tile_us", "nonneg"), ("tok_head_ns", "nonneg"),
               ("tok_kvhead_ns", "nonneg"), ("crit_eff", "eff"), ("head_dim_frac", "frac"))
    specs = []
    for kv, suffix in (("bf16", ""), ("fp8", "_fp8")):
        if ("generation_attention", kv) in have:
            ps = [Param(("efficiency", f"decode_attention{suffix}", n), k) for n, k in decode]
            if kv == "bf16":  # the L2 effect of isolated benchmark rows, fitted once
                ps.append(Param(("calibration", "benchmark_effects", "decode_attention_l2_speedup"), "speedup"))
            specs.append(KeySpec(f"generation_attention:{kv}", _full_attention("generation_attention", kv), ps, attn))
        if ("context_attention", kv) in have:
            ps = [Param(("efficiency", f"prefill_attention{suffix}", n), k) for n, k in prefill]
            specs.append(KeySpec(f"context_attention:{kv}", _full_attention("context_attention", kv), ps, attn))
    order = {"generation_attention:bf16": 0, "context_attention:bf16": 1, "generation_attention:fp8": 2,
             "context_attention:fp8": 3}
    return sorted(specs, key=lambda s: order[s.key])


def nccl_spec(df: pd.DataFrame, op: str) -> KeySpec | None:
    """NCCL ``op``: two protocols' latency and efficiency at each *measured* group size (the
    maps are reset to exactly those sizes), NVLS for all-reduce when it clearly helps
    (:mod:`rlsim.calibration.collective_fit`); None without rows."""
    sub = df[cfit.nccl_rows(df, op)]
    if not len(sub):
        return None
    ns = sorted(int(n) for n in sub["num_gpus"].unique())
    base = ("collectives", "nccl", op)
    ps = [Param(base + (name, n), "nonneg" if "alpha" in name else "eff") for name in cfit.NCCL_FIELDS for n in ns]
    spec = KeySpec(f"nccl_{op}", _half(f"nccl_{op}"), ps, ["nbytes"], prepare=lambda d: cfit.reset_sizes(d, op, ns))
    if op == "all_reduce":
        spec.optional = [Param(path, kind) for path, kind in cfit.nvls_params_paths()]
        spec.optional_start, spec.optional_min_gain = cfit.NVLS_START, cfit.NVLS_MIN_GAIN
    return spec


def _floor_starts(rows: pd.DataFrame) -> list[dict[str, float]]:
    """Data-driven starting values for the eager-harness floors of fp8_block rows (the 10th
    percentile of the measured time for m <= 16, and for larger aligned / unaligned m)."""
    if rows.empty:
        return []
    us = rows["measured_s"].to_numpy(float) * 1e6
    m = rows["m"].to_numpy(float)

    def q(sel: np.ndarray) -> float:
        return float(np.percentile(us[sel], 10)) if sel.any() else float(np.percentile(us, 10))

    small, large = q(m <= 16), q((m > 16) & (np.mod(m, 4) == 0))
    unaligned = max(q((m > 16) & (np.mod(m, 4) != 0)) - large, 0.0)
    base = {"gemm_fp8_block_host_floor_us": small, "gemm_fp8_block_host_floor_large_m_us": large,
            "gemm_fp8_block_host_floor_unaligned_extra_us": unaligned}
    return [{**base, "gemm_fp8_block_harness_extra_us": e} for e in (2.0, 20.0)]


def errors_of(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    """``n``, median and p90 absolute percentage error (rows with a prediction)."""
    ok = np.isfinite(pred) & (meas > 0)
    if not ok.any():
        return {"n": 0, "median_abs_pct_err": float("nan"), "p90_abs_pct_err": float("nan")}
    e = np.abs(pred[ok] / meas[ok] - 1.0) * 100.0
    return {"n": int(ok.sum()), "median_abs_pct_err": float(np.median(e)), "p90_abs_pct_err": float(np.percentile(e, 90))}


def cv_groups(df: pd.DataFrame, cols: list[str], n_folds: int = N_FOLDS) -> np.ndarray:
    """Deterministic fold index per row: unique shape groups, shuffled with a fixed seed."""
    keys = df[cols].astype(float).fillna(-1.0).to_numpy()
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    order = np.random.default_rng(0).permutation(len(uniq))
    fold_of_group = np.empty(len(uniq), dtype=int)
    fold_of_group[order] = np.arange(len(uniq)) % n_folds
    return fold_of_group[inv.ravel()]


@dataclass
class FitResult:
    key: str
    params: dict[str, float]
    rows: int
    in_sample: dict[str, float]
    held_out: dict[str, float]
    data: dict = field(repr=False, default_factory=dict)
    #: the parameters written (a spec's optional ones only when kept)
    fitted: list[Param] = field(default_factory=list)
    #: optional parameters the fit dropped (set to None)
    dropped: list[Param] = field(default_factory=list)
    #: NCCL ops: error when the largest measured group size is held out (collective_fit)
    group_size_held_out: dict = field(default_factory=dict)


#: Starting values for parameters a profile may not have yet (matched by name fragment).
_DEFAULT_START = {"large_alpha_us": 25.0, "large_busbw_eff": 0.9, "l2_speedup": 2.0,
                  "harness_extra_us": 30.0}


def _starts(params: list[Param], data: dict) -> list[np.ndarray]:
    cur = []
    for p in params:
        v = get_param(data, p.path)
        if v is None:  # a missing per-group-size entry: use the scalar / nearest one
            parent = get_param(data, p.path[:-1])
            if isinstance(parent, dict) and parent and isinstance(p.path[-1], int) and all(isinstance(n, int) for n in parent):
                v = parent[min(parent, key=lambda n: abs(n - p.path[-1]))]
            elif isinstance(parent, (int, float)):
                v = parent
            if v is None or isinstance(v, dict):
                v = _DEFAULT_START.get(next((k for k in _DEFAULT_START if k in p.name), ""), 0.5 if p.kind == "eff" else 10.0)
        lo, hi = p.bounds()
        cur.append(float(min(max(v, lo + 1e-6), hi - 1e-6)))
    alt = []
    for p, v in zip(params, cur):
        if p.kind == "eff":
            alt.append(0.5)
        else:
            alt.append(max(v, 1.0))
    alt2 = [0.8 if p.kind == "eff" else v * 0.3 + 0.5 for p, v in zip(params, cur)]
    return [np.array(cur), np.array(alt), np.array(alt2)]


def _solve(data: dict, params: list[Param], df: pd.DataFrame, starts: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Best bounded least-squares solution over ``starts`` and its cost (half the sum of
    squared log residuals)."""
    meas = df["measured_s"].to_numpy(dtype=float)
    logm = np.log(meas)
    lo = np.array([p.bounds()[0] for p in params])
    hi = np.array([p.bounds()[1] for p in params])

    def resid(x: np.ndarray) -> np.ndarray:
        pred = predict(_profile(set_params(data, params, x)), df)
        r = np.log(np.maximum(pred, 1e-12)) - logm
        return np.where(np.isfinite(r), r, 10.0)

    best, best_cost = None, math.inf
    for x0 in starts:
        x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
        try:
            res = least_squares(resid, x0, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=400,
                                diff_step=1e-3)
        except ValueError as exc:
            raise CalibrationError(f"fit failed: {exc}") from None
        if res.cost < best_cost:
            best, best_cost = res.x, res.cost
    return best, best_cost


def _spec_starts(spec: KeySpec, data: dict) -> list[np.ndarray]:
    starts = _starts(spec.params, data)
    for st in spec.starts:  # extra starting points named by parameter (last path element)
        x0 = starts[0].copy()
        for i, p in enumerate(spec.params):
            if p.path[-1] in st:
                x0[i] = st[p.path[-1]]
        starts.append(x0)
    return starts


def _fit_with_choices(data: dict, spec: KeySpec, rows: pd.DataFrame,
                      first: list[np.ndarray] | None = None) -> tuple[dict, np.ndarray, list[np.ndarray]]:
    """Solve for every combination of ``spec.choices`` (none: one solve); keep the cheapest.
    ``first``: starting points tried before the profile-derived ones.  Returns (data with the
    chosen discrete values, x, the starting points used)."""
    best = None
    paths = list(spec.choices)
    for combo in itertools.product(*(spec.choices[p] for p in paths)):
        trial = copy.deepcopy(data)
        for path, value in zip(paths, combo):
            get_param(trial, path[:-1])[path[-1]] = value
        starts = (first or []) + _spec_starts(spec, trial)
        x, cost = _solve(trial, spec.params, rows, starts)
        if best is None or cost < best[3]:
            best = (trial, x, starts, cost)
    return best[0], best[1], best[2]


def _canonical_protocols(params: list[Param], x: np.ndarray) -> np.ndarray:
    """NCCL's two protocols enter as ``min(alpha + b/eff, large_alpha + b/large_eff)``, which is
    symmetric in the pair: order each group size's pair so that ``large_alpha_us >= alpha_us``
    (Simple: more latency, more bandwidth than LL), the same function at every fitted size but
    the intended meaning -- which matters where group sizes are interpolated or extrapolated."""
    x = np.array(x, dtype=float)
    where = {(p.path[:-2], p.path[-2], p.path[-1]): i for i, p in enumerate(params) if isinstance(p.path[-1], int)}
    for (base, name, n), i in where.items():
        if name != "alpha_us":
            continue
        j, k, m = (where.get((base, other, n)) for other in ("busbw_eff", "large_alpha_us", "large_busbw_eff"))
        if None not in (j, k, m) and x[k] < x[i]:
            x[[i, j, k, m]] = x[[k, m, i, j]]
    return x


def fit_key(data: dict, spec: KeySpec, df: pd.DataFrame, *, n_folds: int = N_FOLDS, cv: bool = True) -> FitResult:
    """Fit ``spec``'s parameters on the rows of ``df`` it selects; ``data`` is the profile's
    dict (other parameters held fixed).  Returns the fitted data and in-sample / held-out error."""
    rows = df[spec.select(df)].reset_index(drop=True)
    meas = rows["measured_s"].to_numpy(dtype=float)
    keep = meas > 0
    rows, meas = rows[keep].reset_index(drop=True), meas[keep]
    if len(rows) < len(spec.params) + 1:
        raise CalibrationError(f"{spec.key}: {len(rows)} usable rows, need more than {len(spec.params)} to fit")
    if spec.prepare is not None:
        data = spec.prepare(data)
    original = data
    data, x, starts = _fit_with_choices(data, spec, rows)
    x = _canonical_protocols(spec.params, x)
    params, x, dropped = _with_optional(data, spec, rows, x)
    fitted = set_params(data, params, x)
    for p in dropped:
        get_param(fitted, p.path[:-1])[p.path[-1]] = None
    in_pred = predict(_profile(fitted), rows)
    held = np.full(len(rows), np.nan)
    if cv:
        folds = cv_groups(rows, spec.group_cols, n_folds)
        for f in range(min(n_folds, int(folds.max()) + 1)):
            tr, te = folds != f, folds == f
            if tr.sum() <= len(params) or not te.any():
                continue
            train = rows[tr].reset_index(drop=True)
            if spec.choices:  # discrete choices are re-made on the training folds too
                fold_data, xf, _ = _fit_with_choices(original, spec, train, first=[x])
            else:
                fold_data, (xf, _) = data, _solve(data, params, train, [x] + ([starts[0]] if len(params) == len(spec.params) else []))
            held[te] = predict(_profile(set_params(fold_data, params, xf)), rows[te].reset_index(drop=True))
    return FitResult(
        key=spec.key, params={p.name: float(v) for p, v in zip(params, x)}, rows=len(rows),
        in_sample=errors_of(in_pred, meas), held_out=errors_of(held, meas), data=fitted, fitted=params, dropped=dropped,
    )


def _cost(data: dict, params: list[Param], x: np.ndarray, rows: pd.DataFrame) -> float:
    pred = predict(_profile(set_params(data, params, x)), rows)
    r = np.log(np.maximum(pred, 1e-12)) - np.log(rows["measured_s"].to_numpy(dtype=float))
    return 0.5 * float(np.sum(np.where(np.isfinite(r), r, 10.0) ** 2))


def _with_optional(data: dict, spec: KeySpec, rows: pd.DataFrame, x: np.ndarray) -> tuple[list[Param], np.ndarray, list[Param]]:
    """(parameters, values, dropped): ``spec.optional`` joins the fit only when it lowers the
    in-sample cost by ``spec.optional_min_gain`` (relative)."""
    if not spec.optional:
        return spec.params, x, []
    base = _cost(data, spec.params, x, rows)
    params = spec.params + spec.optional
    x0 = np.concatenate([x, np.asarray(spec.optional_start, dtype=float)])
    x2, cost = _solve(data, params, rows, [x0])
    if cost <= (1.0 - spec.optional_min_gain) * base:
        return params, _canonical_protocols(params, x2), []
    return spec.params, x, list(spec.optional)


def fit_profile(hw: HardwareProfile, df: pd.DataFrame, *, keys: list[str] | None = None, n_folds: int = N_FOLDS,
                cv: bool = True, progress: Callable[[str], None] | None = None) -> tuple[dict, list[FitResult]]:
    """Fit every key the data supports (or ``keys``) in order; returns (profile data, results)."""
    data = hw.model_dump(mode="python")
    results = []
    specs = key_specs(df)
    if keys is not None:
        unknown = sorted(set(keys) - {s.key for s in specs})
        if unknown:
            raise CalibrationError(f"--keys: {', '.join(unknown)} not fittable from this data (have: {', '.join(s.key for s in specs)})")
        specs = [s for s in specs if s.key in keys]
    if not specs:
        classes = ", ".join(sorted({f"{o}:{d}" for o, d in zip(df["op_class"], df["dtype"].fillna(""))}))
        raise CalibrationError(f"no measured rows any key can fit (have: {classes or 'none'})")
    for spec in specs:
        if progress:
            progress(spec.key)
        if spec.key == "gemm:fp8_block" and data["efficiency"]["gemm"].get("fp8_block") is not None:
            data = copy.deepcopy(data)  # kernel floor and k loop of the block-scaled kernel = the bf16 kernel's
            for name in FP8_BLOCK_FROM_BF16:
                data["efficiency"]["gemm"]["fp8_block"][name] = data["efficiency"]["gemm"]["bf16"][name]
        if spec.key in START_FROM and get_param(data, START_FROM[spec.key][0]) is None:
            target, source = START_FROM[spec.key]
            data = copy.deepcopy(data)
            get_param(data, target[:-1])[target[-1]] = copy.deepcopy(get_param(data, source))
        r = fit_key(data, spec, df, n_folds=n_folds, cv=cv)
        data = r.data
        results.append(r)
    fitted_keys = {r.key for r in results}
    if {"nccl_all_reduce", "nccl_all_gather"} <= fitted_keys:
        data = copy.deepcopy(data)
        data["collectives"].update(cfit.derive_step_latency(data))
    if cv and any(k.startswith("nccl_") for k in fitted_keys):
        held = cfit.group_size_holdout(data, df, _refit_nccl, predict, errors_of)
        for r in results:
            r.group_size_held_out = held.get(r.key, {})
    return data, results


def _refit_nccl(data: dict, op: str, rows: pd.DataFrame) -> dict:
    """``data`` with NCCL ``op`` refitted on ``rows`` only (no CV): the group-size hold-out."""
    return fit_key(data, nccl_spec(rows, op), rows, cv=False).data
