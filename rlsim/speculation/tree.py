"""Draft trees (EAGLE-2/3 dynamic trees; vLLM ``spec_token_tree``; SGLang ``--speculative-eagle-topk
> 1`` with ``--speculative-num-draft-tokens``) priced with the chain's cost model.

A tree round drafts ``depth`` levels; after the first step every level expands the ``topk`` best
candidates per request (one draft forward over ``B x topk`` tokens per level), and the verify
pass checks the ``num_draft_tokens`` best nodes of the tree at once (tree attention: ``B x (1 +
num_draft_tokens)`` query tokens over each request's context).  The longest accepted path gives
the round's tokens.

Accepted length from per-branch acceptance: level ``i`` holds ``w_i`` candidates (the tree's
tokens split evenly over its levels, at most ``topk`` per level and at most ``topk^i``); the
chain's conditional rate ``a_i`` (the top candidate) becomes ``1 - (1 - a_i) (1 - g)^(w_i - 1)``:
each further sibling catches a share ``g`` of what the ones before it missed (the form is
assumed; ``g`` is :func:`branch_gain`, fitted so that a Llama-3.1-8B EAGLE-3 tree of SGLang's
example shape reaches the measured AL 4.68 at 5 steps from vLLM's chain rates on the same
benchmark -- hardware_and_models.md C3 table, [SGL-4247], [VLLM-20780]).

This module prices trees for analysis and the regime checks (goodput of a tree vs a chain at
a batch size); the engine simulates chains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlsim.speculation.acceptance import conditional_from_unconditional

__all__ = ["DraftTree", "branch_gain", "tree_acceptance_length", "tree_round_s", "chain_round_s", "goodput"]

#: Llama-3.1-8B EAGLE-3 on MT-Bench: vLLM's chain per-position rates ([VLLM-20780], derived in
#: hardware_and_models.md C3) and SGLang's tree AL at 5 steps ([SGL-4247]); tree shape: SGLang's
#: EAGLE-3 example (5 steps, topk 8, 32 draft tokens; assumed to be the measured setting).
_CHAIN_RATES = (0.78, 0.58, 0.43, 0.29, 0.24, 0.14, 0.08)
_SGLANG_TREE = (5, 8, 32, 4.68)


@dataclass(frozen=True)
class DraftTree:
    """A draft tree: ``depth`` levels, ``topk`` branches per node, ``num_draft_tokens`` verified."""

    depth: int
    topk: int
    num_draft_tokens: int

    def widths(self) -> np.ndarray:
        """Candidates per level (sum = ``num_draft_tokens`` unless the caps bind)."""
        out, left = [], self.num_draft_tokens
        for i in range(1, self.depth + 1):
            w = min(self.topk ** i, self.topk, math.ceil(left / (self.depth - i + 1)))
            out.append(max(1, w))
            left -= out[-1]
        return np.array(out, dtype=np.int64)


def tree_acceptance_length(chain_conditional: np.ndarray, tree: DraftTree, gain: float) -> float:
    """Mean tokens per tree round (bonus included) from the chain's conditional rates."""
    a = np.asarray(chain_conditional, dtype=np.float64)[: tree.depth]
    w = tree.widths()[: a.size]
    a_tree = 1.0 - (1.0 - a) * (1.0 - gain) ** (w - 1)
    return 1.0 + float(np.cumprod(a_tree).sum())


def branch_gain() -> float:
    """``g`` fitted to the measured tree AL (see the module docstring)."""
    from scipy.optimize import brentq

    depth, topk, tokens, al = _SGLANG_TREE
    a = conditional_from_unconditional(np.array(_CHAIN_RATES))
    tree = DraftTree(depth, topk, tokens)
    return brentq(lambda g: tree_acceptance_length(a, tree, g) - al, 0.0, 1.0 - 1e-9)


def chain_round_s(runtime, batch: int, ctx_tokens: float, k: int) -> float:
    """A chain round's time (GPU and critical-path host, as the engine prices it; host time that
    async scheduling can hide is left out)."""
    return runtime.step_time_s(batch, ctx_tokens, k)


def tree_round_s(runtime, batch: int, ctx_tokens: float, tree: DraftTree) -> float:
    """A tree round's time: verify over ``B x (1 + num_draft_tokens)`` tokens, the first draft
    step over the accepted tokens, ``depth - 1`` steps over ``topk`` tokens per request and the
    verification extras for the tree's tokens (host time async scheduling can hide is left out, as
    in :func:`chain_round_s`)."""
    n = tree.num_draft_tokens
    ctx = np.array([ctx_tokens + batch * n], dtype=np.float64)
    verify = float(runtime.target.decode_times_s(batch, ctx, q=1 + n)[0]) + runtime.verify_extra_s(batch, n)
    d = runtime.drafter
    draft = float(d.fwd.decode_times_s(batch, ctx, q=1 + tree.depth)[0])
    draft += (tree.depth - 1) * float(d.fwd.decode_times_s(batch, ctx, q=tree.topk)[0])
    return verify + draft  # the drafter's host overheads are left out, as in chain_round_s


def goodput(runtime, batch: int, ctx_tokens: float, k: int, tree: DraftTree | None = None,
            gain: float | None = None) -> float:
    """Tokens per second of a chain with ``k`` drafts, or of ``tree`` (``k`` ignored), at
    ``batch`` requests holding ``ctx_tokens`` in all; acceptance from the runtime's model."""
    model = runtime.sampler.model
    if tree is None:
        return batch * model.mean_acceptance_length(k) / chain_round_s(runtime, batch, ctx_tokens, k)
    g = branch_gain() if gain is None else gain
    al = tree_acceptance_length(model.conditional_rates(tree.depth), tree, g)
    return batch * al / tree_round_s(runtime, batch, ctx_tokens, tree)
