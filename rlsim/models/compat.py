"""Checks that a draft model fits its target: what a run should warn about.

:func:`draft_target_warnings` compares an EAGLE-3 head (or a draft model) with the target it is
asked to serve and returns one line per mismatch (empty when they fit).  The run turns them
into warnings; nothing here raises, because vLLM itself loads some of these pairs and only the
acceptance suffers.

* vocabulary: an EAGLE-3 head's ``vocab_size`` is the target vocabulary its ``d2t`` map points
  into (its ``draft_vocab_size`` is its own, smaller one); a head trained for another tokenizer
  (a Qwen3 head, 151,936, for a 32,000-token Llama-2 target) proposes ids that mean other
  tokens, so acceptance collapses.  A draft *model* must share the target's tokenizer (vLLM's
  draft-model method requires equal vocabularies).
* hidden size: an EAGLE-3 head's ``fc`` fuses three target hidden states (``3H -> H``) and its
  first layer reads ``[embedding; fused hidden]``: a different ``hidden_size`` cannot even load.
* ``target_model``: the head names the target it was trained for (catalog heads do).
"""

from __future__ import annotations

from rlsim.models.arch import ModelArch
from rlsim.models.registry import catalog_name

__all__ = ["draft_target_warnings"]


def draft_target_warnings(draft: ModelArch, target: ModelArch) -> tuple[str, ...]:
    """One line per way ``draft`` does not fit ``target`` (see the module docstring)."""
    out: list[str] = []
    kind = "EAGLE-3 head" if draft.is_draft_head else "draft model"
    if draft.vocab_size != target.vocab_size:
        out.append(f"{kind} {draft.name}: vocab_size = {draft.vocab_size} differs from target {target.name}'s "
                   f"vocab_size = {target.vocab_size}: it was trained for another tokenizer, its proposals are other "
                   "tokens' ids and acceptance will be near zero (the acceptance model does not know this)")
    if draft.is_draft_head and draft.hidden_size != target.hidden_size:
        out.append(f"EAGLE-3 head {draft.name}: hidden_size = {draft.hidden_size} differs from target {target.name}'s "
                   f"hidden_size = {target.hidden_size}: its fc layer reads 3 x the target's hidden states, vLLM cannot "
                   "load this pair")
    if draft.target_model and _canonical(draft.target_model) != _canonical(target.name):
        out.append(f"{kind} {draft.name}: trained for target_model = {draft.target_model!r}, used with {target.name!r}")
    return tuple(out)


def _canonical(name: str) -> str:
    """Catalog name of ``name`` (an HF id or alias), lower-cased; else ``name`` lower-cased."""
    return (catalog_name(name) or name).lower()
