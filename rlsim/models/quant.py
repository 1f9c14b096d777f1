"""How a checkpoint's weights are quantised: one dtype per group of linear weights.

:class:`Quantization` says which dtype each group of GEMM weights is stored in (attention
projections, dense MLPs, routed experts, shared experts, router, LM head) and which KV-cache
dtype the checkpoint was calibrated for.  :func:`parse_quantization` reads it from an HF
``config.json``'s ``quantization_config`` and / or a ModelOpt ``hf_quant_config.json``, so a
user's own checkpoint config works.

Methods read (vLLM's names, ``quantization_config.quant_method``):

* ``fp8``: e4m3 weights, ``weight_block_size`` [128, 128] -> ``fp8_block`` (DeepSeek-V3,
  MiniMax-M2.5), else per-tensor ``fp8``; ``modules_to_not_convert`` / ``ignored_layers``;
* ``mxfp4`` (gpt-oss): only the routed experts are MXFP4 (vLLM's Mxfp4Config quantises MoE
  layers only; the checkpoint lists attention, router, embedding and lm_head as not converted);
* ``modelopt`` (NVIDIA ModelOpt; also read from ``hf_quant_config.json``): ``quant_algo``
  ``FP8`` (per-tensor) or ``NVFP4`` (``fp4``), ``exclude_modules`` / ``ignore``,
  ``kv_cache_quant_algo`` / ``kv_cache_scheme``;
* ``compressed-tensors`` (llm-compressor): each ``config_groups`` entry's weight scheme --
  int 4-bit without input activations -> weight-only ``int4`` (group size from the scheme),
  float 8-bit -> ``fp8`` (``fp8_block`` for 128 x 128 blocks), float 4-bit group 16 -> ``fp4``
  (NVFP4), group 32 -> ``mxfp4``; ``targets`` and ``ignore``; ``kv_cache_scheme``;
* ``gptq`` / ``awq``: 4-bit weight-only ``int4`` with ``group_size`` (``bits`` other than 4 are
  refused), every linear layer except the LM head; AWQ's ``modules_to_not_convert``.

Rules (assumptions where the checkpoint does not say):

* router (gate) GEMMs, the LM head and the embedding stay bf16: vLLM builds every MoE gate
  with ``quant_config=None`` and keeps ``ParallelLMHead`` / ``VocabParallelEmbedding``
  unquantised for these methods;
* module patterns: ``re:<regex>`` is ``re.match`` on the module name (compressed-tensors); a
  pattern with ``*``, ``?`` or ``[`` is an ``fnmatch`` glob on the name or a prefix of it
  (ModelOpt, gpt-oss); a plain name matches the whole name or whole dotted components of it
  (``gate`` matches ``...block_sparse_moe.gate``, not ``mlp.gate_proj``; HF's substring test
  would match both);
* a group is excluded when most of its modules (over all layers that carry it) are; a partly
  excluded group is timed at its majority dtype and says so in :attr:`Quantization.notes`.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

from rlsim.errors import ConfigError
from rlsim.units import INT4_BY_GROUP_SIZE

__all__ = ["Quantization", "QUANTISABLE_GROUPS", "ModuleNames", "parse_quantization", "SUPPORTED_QUANT_METHODS"]

#: Groups of linear weights a checkpoint may quantise (router and head are never quantised).
QUANTISABLE_GROUPS = ("attention", "dense_mlp", "expert", "shared_expert", "draft_fc")
SUPPORTED_QUANT_METHODS = ("awq", "compressed-tensors", "fp8", "gptq", "modelopt", "mxfp4")
_QUANTISED = {"fp8", "fp8_block", "fp4", "mxfp4", *INT4_BY_GROUP_SIZE.values()}


class Quantization(BaseModel):
    """Storage dtype of each group of linear weights (see the module docstring).

    ``dtype`` is the dtype of the quantised layers (``bf16`` for an unquantised checkpoint),
    the model's ``weight_dtype``; ``kv_cache_dtype`` the checkpoint's calibrated KV-cache
    scheme (``fp8``) or None; ``weight_only``: activations stay bf16 (W4A16 kernels).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = "none"
    dtype: str = "bf16"
    attention: str = "bf16"
    dense_mlp: str = "bf16"
    expert: str = "bf16"
    shared_expert: str = "bf16"
    draft_fc: str = "bf16"
    router: Literal["bf16"] = "bf16"
    head: str = "bf16"
    kv_cache_dtype: str | None = None
    weight_only: bool = False
    notes: tuple[str, ...] = ()

    @classmethod
    def uniform(cls, dtype: str) -> "Quantization":
        """Every linear weight at ``dtype`` except the router and, for a quantised ``dtype``,
        the LM head (bf16): what a ``--quantization`` / ``model.dtype`` override means."""
        head = "bf16" if dtype in _QUANTISED else dtype
        method = "none" if dtype in ("bf16", "fp16") else "override"
        return cls(method=method, dtype=dtype, head=head, weight_only=_weight_only(dtype),
                   **{g: dtype for g in QUANTISABLE_GROUPS})

    def dtype_of(self, group: str) -> str:
        """Storage dtype of linear-weight group ``group`` (a :class:`LinearWeight` group)."""
        return getattr(self, group)

    def groups(self) -> dict[str, str]:
        """``{group: dtype}`` for every linear-weight group."""
        return {g: self.dtype_of(g) for g in (*QUANTISABLE_GROUPS, "router", "head")}


def _weight_only(dtype: str) -> bool:
    return dtype == "mxfp4" or dtype.startswith("int4")


# --------------------------------------------------------------------------- module names

#: ``{group: [module-name templates with {i} for the layer index]}`` of one model family.
ModuleNames = dict[str, list[str]]


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*")
    return name == pattern or f".{pattern}." in f".{name}."


def _group_dtypes(names: ModuleNames, layers: dict[str, range], scheme: Callable[[str, str], str | None]
                  ) -> tuple[dict[str, str], list[str]]:
    """Majority storage dtype per group (None from ``scheme`` = unquantised bf16) and notes on
    partly excluded groups."""
    out, notes = {}, []
    for group in QUANTISABLE_GROUPS:
        templates, idx = names.get(group, []), layers.get(group, range(0))
        counts = Counter(scheme(group, t.format(i=i)) or "bf16" for i in idx for t in templates)
        if not counts:
            out[group] = "bf16"
            continue
        dtype, n = max(counts.items(), key=lambda kv: (kv[1], kv[0] != "bf16"))
        out[group] = dtype
        if n < sum(counts.values()):
            other = ", ".join(f"{c} {d}" for d, c in sorted(counts.items()) if d != dtype)
            notes.append(f"{group}: {n} of {sum(counts.values())} modules {dtype} ({other}); timed as {dtype}")
    return out, notes


# --------------------------------------------------------------------------- parsing


class _Q:
    """One quantisation config section with errors naming ``where`` and the key path."""

    def __init__(self, data: dict[str, Any], where: str, path: str) -> None:
        self.data, self.where, self.path = data, where, path

    def error(self, key: str, value: Any, rule: str) -> ConfigError:
        return ConfigError.at(self.where, f"{self.path}.{key}" if key else self.path, value, rule)

    def patterns(self, *keys: str) -> list[str]:
        out: list[str] = []
        for key in keys:
            value = self.data.get(key)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise self.error(key, value, "must be a list of module names or patterns")
            out += value
        return out


def _kv_from_scheme(q: _Q) -> str | None:
    scheme = q.data.get("kv_cache_scheme")
    if scheme is None:
        algo = q.data.get("kv_cache_quant_algo")
        if algo is None:
            return None
        if str(algo).upper() != "FP8":
            raise q.error("kv_cache_quant_algo", algo, "is not supported (supported: FP8, null)")
        return "fp8"
    if not isinstance(scheme, dict) or scheme.get("num_bits") != 8 or scheme.get("type", "float") != "float":
        raise q.error("kv_cache_scheme", scheme, "is not supported (supported: 8-bit float, null)")
    return "fp8"


def _fp8(q: _Q) -> tuple[Callable[[str, str], str | None], str | None, bool]:
    block = q.data.get("weight_block_size")
    if block is not None and block != [128, 128]:
        raise q.error("weight_block_size", block, "is not supported (supported: [128, 128], null)")
    dtype = "fp8_block" if block else "fp8"
    skip = q.patterns("modules_to_not_convert", "ignored_layers")
    return (lambda g, name: None if any(_matches(p, name) for p in skip) else dtype), _kv_from_scheme(q), False


def _mxfp4(q: _Q) -> tuple[Callable[[str, str], str | None], str | None, bool]:
    skip = q.patterns("modules_to_not_convert", "ignored_layers")
    return (lambda g, name: "mxfp4" if g == "expert" and not any(_matches(p, name) for p in skip) else None), None, True


_MODELOPT_ALGO = {"FP8": "fp8", "NVFP4": "fp4"}


def _modelopt(q: _Q) -> tuple[Callable[[str, str], str | None], str | None, bool]:
    algo = q.data.get("quant_algo")
    if algo not in _MODELOPT_ALGO:
        raise q.error("quant_algo", algo, f"is not supported (supported: {', '.join(_MODELOPT_ALGO)})")
    dtype = _MODELOPT_ALGO[algo]
    skip = q.patterns("exclude_modules", "ignore")
    return (lambda g, name: None if any(_matches(p, name) for p in skip) else dtype), _kv_from_scheme(q), False


def _ct_scheme_dtype(q: _Q, key: str, group: Any) -> tuple[str, bool]:
    """(dtype, weight-only) of one compressed-tensors config group."""
    if not isinstance(group, dict) or not isinstance(group.get("weights"), dict):
        raise q.error(f"config_groups.{key}.weights", None if not isinstance(group, dict) else group.get("weights"),
                      "must be a mapping with num_bits and type")
    w, acts = group["weights"], group.get("input_activations")
    bits, kind, size = w.get("num_bits"), w.get("type", "int"), w.get("group_size")
    if kind == "int" and bits == 4 and acts is None:
        gs = -1 if w.get("strategy") == "channel" or size is None else size
        if gs not in INT4_BY_GROUP_SIZE:
            raise q.error(f"config_groups.{key}.weights.group_size", size, "is not supported (supported: 32, 64, 128, -1)")
        return INT4_BY_GROUP_SIZE[gs], True
    if kind == "float" and bits == 8:
        return ("fp8_block" if w.get("strategy") == "block" else "fp8"), acts is None
    if kind == "float" and bits == 4 and size in (16, 32):
        return ("fp4" if size == 16 else "mxfp4"), acts is None
    rule = "is not supported (supported: int 4-bit weight-only, float 8-bit, float 4-bit with group 16 or 32)"
    raise q.error(f"config_groups.{key}.weights", {"num_bits": bits, "type": kind, "group_size": size}, rule)


def _compressed_tensors(q: _Q) -> tuple[Callable[[str, str], str | None], str | None, bool]:
    groups = q.data.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise q.error("config_groups", groups, "must be a non-empty mapping of quantisation schemes")
    schemes = []
    for key, group in groups.items():
        dtype, weight_only = _ct_scheme_dtype(q, key, group)
        targets = group.get("targets") or ["Linear"]
        schemes.append((dtype, weight_only, [t for t in targets if isinstance(t, str)]))
    skip = q.patterns("ignore")

    def scheme(g: str, name: str) -> str | None:
        if any(_matches(p, name) for p in skip):
            return None
        return next((d for d, _, ts in schemes if any(t == "Linear" or _matches(t, name) for t in ts)), None)

    return scheme, _kv_from_scheme(q), all(w for _, w, _ in schemes)


def _gptq_awq(q: _Q) -> tuple[Callable[[str, str], str | None], str | None, bool]:
    key = "bits" if "bits" in q.data else "w_bit"  # GPTQ / AWQ spelling
    bits = q.data.get(key)
    if bits != 4:
        raise q.error(key, bits, "is not supported (supported: 4)")
    size = q.data.get("group_size", q.data.get("q_group_size", 128))
    if size not in INT4_BY_GROUP_SIZE:
        raise q.error("group_size", size, "is not supported (supported: 32, 64, 128, -1)")
    dtype = INT4_BY_GROUP_SIZE[size]
    skip = q.patterns("modules_to_not_convert")
    return (lambda g, name: None if any(_matches(p, name) for p in skip) else dtype), None, True


_METHODS = {"fp8": _fp8, "mxfp4": _mxfp4, "modelopt": _modelopt, "compressed-tensors": _compressed_tensors,
            "gptq": _gptq_awq, "awq": _gptq_awq}


def _section(config_quant: Any, sidecar: Any, where: str, sidecar_where: str, path: str) -> _Q | None:
    """The quantisation section to read: the config's, else the hf_quant_config.json's
    ``quantization`` (ModelOpt); a sidecar naming another algorithm than the config is an error."""
    side = None
    if sidecar is not None:
        body = sidecar.get("quantization") if isinstance(sidecar, dict) else None
        if not isinstance(body, dict):
            raise ConfigError.at(sidecar_where, "quantization", body, "must be a mapping (ModelOpt hf_quant_config.json)")
        side = _Q({"quant_method": "modelopt", **body}, sidecar_where, "quantization")
    if config_quant is None:
        return side
    if not isinstance(config_quant, dict):
        raise ConfigError.at(where, path, config_quant, "must be a mapping")
    q = _Q(config_quant, where, path)
    if side is not None and q.data.get("quant_method") == "modelopt" and "quant_algo" in q.data:
        if q.data["quant_algo"] != side.data.get("quant_algo"):
            raise q.error("quant_algo", q.data["quant_algo"],
                          f"disagrees with {sidecar_where} quantization.quant_algo = {side.data.get('quant_algo')!r}")
    if side is not None and _kv_from_scheme(q) is None and _kv_from_scheme(side) is not None:
        q = _Q({**q.data, "kv_cache_quant_algo": side.data.get("kv_cache_quant_algo")}, where, path)
    return q


def parse_quantization(config_quant: Any, names: ModuleNames, layers: dict[str, range], where: str, *,
                       path: str = "quantization_config", sidecar: Any = None,
                       sidecar_where: str = "hf_quant_config.json") -> Quantization:
    """:class:`Quantization` from a config's ``quantization_config`` (``config_quant``, None if
    absent) and an optional ModelOpt ``hf_quant_config.json`` dict (``sidecar``).  ``names``:
    the family's module-name templates per group; ``layers``: the layer indices carrying each
    group; ``path``: where ``config_quant`` sits in the config.  Unsupported methods and schemes
    are one-line ConfigErrors naming the key."""
    q = _section(config_quant, sidecar, where, sidecar_where, path)
    if q is None:
        return Quantization()
    method = q.data.get("quant_method")
    if method not in _METHODS:
        raise q.error("quant_method", method, f"is not supported (supported: {', '.join(SUPPORTED_QUANT_METHODS)})")
    scheme, kv, weight_only = _METHODS[method](q)
    dtypes, notes = _group_dtypes(names, layers, scheme)
    quantised = [d for d in dtypes.values() if d != "bf16"]
    if not quantised:
        raise q.error("", method, "quantises no linear layer of this model (every module is excluded)")
    dtype = Counter(quantised).most_common(1)[0][0] if "expert" not in dtypes or dtypes["expert"] == "bf16" \
        else dtypes["expert"]
    return Quantization(method=method, dtype=dtype, kv_cache_dtype=kv, weight_only=weight_only, notes=tuple(notes),
                        **dtypes)
