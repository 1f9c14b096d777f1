"""What one scheduled iteration computes: the forward pass's shape (a pure function).

A scheduled request whose cached tokens before the pass are one short of its tokens decodes
(its ``q`` new tokens are the pending token plus ``q - 1`` draft slots); every other request
runs a prefill chunk.  Prefill chunks attend causally to their cached tokens plus themselves;
a chunk that reaches the end of its prompt samples a token (needs logits), as does every
position of a decode (a verify pass has logits at all ``1 + k`` positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlsim.cost.forward import PassShape
from rlsim.hardware.ops import ATTN_TILE_M

__all__ = ["PassWork", "pass_work"]


@dataclass(frozen=True)
class PassWork:
    """A pass's shape plus what the engine needs beside it."""

    shape: PassShape
    prefill_tokens: int
    decode_seqs: int
    drafts_per_seq: int  # k of the decoding requests' verify (0: plain decode or none)


def pass_work(total_tokens: np.ndarray, new_tokens: np.ndarray, computed_before: np.ndarray) -> PassWork:
    """The pass over requests with ``total_tokens`` (prompt + generated) each, scheduled for
    ``new_tokens`` with ``computed_before`` tokens cached."""
    decode = computed_before + 1 == total_tokens
    if decode.all():
        return _decode_work(new_tokens, computed_before + new_tokens)
    chunk, chunk_cached = new_tokens[~decode], computed_before[~decode]
    queries, cached = new_tokens[decode], computed_before[decode]
    ctx = cached + queries
    has_chunks = len(chunk) > 0
    shape = PassShape(
        num_tokens=int(new_tokens.sum()),
        num_logits=int(queries.sum()) + int(np.count_nonzero(chunk_cached + chunk == total_tokens[~decode])),
        decode_seqs=int(len(queries)),
        decode_ctx_tokens=float(ctx.sum()),
        prefill_seqs=int(len(chunk)),
        prefill_pairs=float((chunk * (chunk_cached + (chunk + 1) / 2.0)).sum()),
        prefill_kv_tokens=float((chunk_cached + chunk).sum()),
        decode_pairs=float((queries * ctx - queries * (queries - 1) / 2.0).sum()),
        prefill_tokens=float(chunk.sum()),
        prefill_tiles=float(np.ceil(chunk / ATTN_TILE_M).sum()) if has_chunks else 0.0,
        prefill_max_keys=float((chunk_cached + chunk).max()) if has_chunks else 0.0,
    )
    k = int(queries.max()) - 1 if len(queries) else 0
    return PassWork(shape, int(chunk.sum()), int(len(queries)), k)


def _decode_work(queries: np.ndarray, ctx: np.ndarray) -> PassWork:
    """:func:`pass_work` of a pass where every request decodes (the same numbers, fewer steps)."""
    shape = PassShape(
        num_tokens=int(queries.sum()), num_logits=int(queries.sum()), decode_seqs=int(len(queries)),
        decode_ctx_tokens=float(ctx.sum()), prefill_seqs=0, prefill_pairs=0.0, prefill_kv_tokens=0.0,
        decode_pairs=float((queries * ctx - queries * (queries - 1) / 2.0).sum()), prefill_tokens=0.0,
        prefill_tiles=0.0, prefill_max_keys=0.0)
    return PassWork(shape, 0, int(len(queries)), int(queries.max()) - 1 if len(queries) else 0)
