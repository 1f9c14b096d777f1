"""What changes with the vLLM version and the GPU: the defaults a user gets when a scenario
leaves an engine setting unset (``rollout.engine.vllm_version``, ``None`` = the latest).

Sources (``shared/reference/hardware_and_models.md`` C1; vllm/engine/arg_utils.py):

* **Async scheduling** (PR #19970) became the default in PR #27614, late 2025 [CN-ASYNC,
  UNVERIFIED from primary sources]: taken as default-on from v0.12.0, the first release after
  it (assumed).  Speculative decoding was incompatible with async scheduling until PR #31998
  [VLLM-32775]: taken as compatible from v0.14.0 (assumed); before it an engine with a
  ``speculative_config`` schedules synchronously.  Only GPU drafters (``eagle``, ``eagle3``,
  ``mtp``) run under async scheduling: vLLM's config check allows async scheduling with
  "EAGLE/MTP kind of speculative decoding" only (``vllm/config``: the n-gram proposer needs the
  step's sampled tokens on the host before it can propose; the draft-model proposer is not of
  the EAGLE kind) -- assumed from that check, for every version.
* **Scheduler limits** (``EngineArgs._set_default_args``): on GPUs with at least 70 GiB,
  ``max_num_batched_tokens`` is 16,384 for the offline ``LLM`` class (what RL frameworks drive)
  and 8,192 for the OpenAI API server (``vllm serve``), ``max_num_seqs`` 1,024 for both; on
  smaller GPUs 8,192 / 2,048 tokens and 256 sequences.
* CUDA graphs: FULL_AND_PIECEWISE (full graphs for decode-only batches, piecewise around
  attention for mixed ones) in every version the measured runs span (0.11-0.19) -- what
  :class:`rlsim.cost.ForwardModel` models; not version-dependent here.
"""

from __future__ import annotations

import re

__all__ = ["parse_version", "default_async_scheduling", "async_with_spec", "ASYNC_SPEC_METHODS", "default_limits", "ASYNC_DEFAULT_SINCE",
           "ASYNC_WITH_SPEC_SINCE", "LATEST", "RELEASES", "version_at"]

#: First version with async scheduling on by default (assumed, see the module docstring).
ASYNC_DEFAULT_SINCE = (0, 12, 0)
#: First version where speculative decoding runs with async scheduling (assumed).
ASYNC_WITH_SPEC_SINCE = (0, 14, 0)
#: The version ``None`` and nightly builds stand for.
LATEST = (0, 24, 0)
_GIB = 1024**3


def parse_version(text: str | None) -> tuple[int, int, int]:
    """``"0.19.0"`` -> (0, 19, 0); None and ``nightly-...`` -> :data:`LATEST`."""
    if text is None or str(text).startswith("nightly"):
        return LATEST
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text).strip())
    if not m:
        raise ValueError(f"vllm_version = {text!r} is not a version like 0.19.0 (or nightly-...)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


#: Speculative methods vLLM runs with async scheduling (its EAGLE/MTP check, assumed).
ASYNC_SPEC_METHODS = ("eagle", "eagle3", "mtp")


def async_with_spec(version: str | None, method: str) -> bool:
    """Whether vLLM at ``version`` can schedule asynchronously with speculative ``method``."""
    return method in ASYNC_SPEC_METHODS and parse_version(version) >= ASYNC_WITH_SPEC_SINCE


def default_async_scheduling(version: str | None, speculative: bool, method: str | None = None) -> bool:
    """Whether vLLM schedules asynchronously by default at ``version`` (with speculative
    ``method``: only where :func:`async_with_spec`)."""
    v = parse_version(version)
    if v < ASYNC_DEFAULT_SINCE:
        return False
    return not speculative or async_with_spec(version, method or "eagle3")


def default_limits(hbm_bytes: float, usage: str) -> tuple[int, int]:
    """vLLM's default ``(max_num_seqs, max_num_batched_tokens)`` for a GPU's memory and the
    usage context: ``serve`` (API server) or ``llm`` (the offline LLM class)."""
    big = hbm_bytes >= 70 * _GIB
    if usage == "serve":
        return (1024, 8192) if big else (256, 2048)
    return (1024, 16384) if big else (256, 8192)


#: vLLM releases and their dates (GitHub release pages, as remembered: approximate, assumed);
#: used only to date a measurement that records its date but not its version.
RELEASES = (("0.10.0", "2025-07-24"), ("0.10.1", "2025-08-18"), ("0.10.2", "2025-09-13"), ("0.11.0", "2025-10-02"),
            ("0.11.1", "2025-11-18"), ("0.11.2", "2025-11-20"), ("0.12.0", "2025-12-03"), ("0.13.0", "2025-12-18"),
            ("0.14.0", "2026-01-20"), ("0.15.0", "2026-02-04"))


def version_at(date: str) -> str | None:
    """The latest release of :data:`RELEASES` on or before ``date`` (ISO), None before them."""
    out = None
    for version, released in RELEASES:
        if released <= date:
            out = version
    return out
