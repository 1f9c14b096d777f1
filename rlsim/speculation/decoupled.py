"""Decoupled drafting: the drafter on its own GPUs, pipelined with the target's verify pass.

Model (SpecActor, "fast RL rollout with decoupled speculative decoding", 2025 preprint; its
arXiv id, sections and figures were not checked here -- the mechanism is as recalled and as
rlsim issue 17 describes it).  Coupled (vLLM), an iteration's GPU time is
``verify + draft``: the drafter runs on the target's GPUs after the verify pass.  Decoupled,
the drafter runs on a separate drafter GPU and drafts round r + 1 while the target verifies
round r, *assuming every draft of round r is accepted and guessing the target's bonus token*
(the pre-drafted round r + 1 continues from the drafter's own (k + 1)-th guess):

* a request whose round r accepted all k drafts **and** whose bonus token (the target's own
  token after the k accepted drafts) equals the drafter's (k + 1)-th guess has its next drafts
  ready: its drafting was hidden behind the verify pass;
* otherwise (a rejected draft, or a bonus token the drafter did not guess) the pre-drafted
  tokens are wasted; its next round must be drafted after round r's result is known, serially.

The engine runs its batch in **lock-step** (one verify pass for every running request), so an
iteration waits for its slowest member: it is hidden only if *every* request of the batch
accepted all its drafts and had its bonus guessed.  Requests are independent, each with
``p = P(A_{k+1} = k + 1)`` -- the acceptance model with k + 1 drafts accepting all of them (the
bonus guess is the (k + 1)-th draft position), ``prod_{j <= k+1} a_j``, ``a**(k+1)`` at a
constant rate -- so the probability that an iteration of a batch of B requests is hidden is
``q = p**B`` (:func:`hidden_probability`); an
iteration is priced at its **expectation** over the acceptance draws (not at the realised
draws), so the step time is a function of the batch alone and the fast path's jumps stay
exactly equal to one-iteration stepping:

    GPU time = q * max(verify, remote) + (1 - q) * (verify + remote) + transfer
             = verify + remote - q * min(verify, remote) + transfer

(:func:`decoupled_iteration_s`, the one rule), where

* ``verify`` = the target's pass plus its verification extras (rejection sampler), as coupled;
* ``remote`` = the drafter's time for the batch (its kernels at the drafter's own tensor
  parallel size, plus its share of any prefill) **x the load share** ``s`` = engines served
  per drafter instance.  Queueing assumption: each drafter instance is split statically
  between its ``s`` engines (processor sharing with every engine always drafting), so one
  engine's batch takes ``s`` times as long; the drafter never batches several engines'
  requests into one pass (conservative for a memory-bound drafter) and an engine idle in the
  tail does not give its share to the others (conservative in the tail);
* ``transfer`` = two point-to-point sends (:func:`rlsim.hardware.ops.p2p_time_s`, the one
  rule: link latency + bytes / (bandwidth x the link's measured efficiency)): the drafts to the
  target (``k`` token ids per request, 4 bytes each, assumed int32) and the target's results
  back to the drafter (the token ids of every token it computed -- the expected ``1 + E[A_k]``
  per request, and the prefill tokens -- with, for drafters that read the target's hidden
  states, those states: EAGLE-3 three layers' features, 3H; EAGLE / MTP one, H; 2 bytes each,
  bf16 assumed).  NVLink when the engine and its drafter sit in one NVLink domain, the NIC
  otherwise (placement assumed: engine i on GPUs ``[i tp, (i + 1) tp)``, then the drafter
  instances; engine e served by instance ``e mod instances``, whose load share ``s_e`` is the
  number of engines it serves: ``ceil((engines - i) / instances)`` for instance i).

What it gives: at batch 1, ``q = p`` (0.68**4 = 0.21 for a = 0.68, k = 3), so about a fifth of
the iterations hide the drafter; at batch 128, ``q = p**128 ~ 1e-86``: virtually every iteration
has a rejection somewhere, pays ``verify + remote`` and gains nothing over coupled drafting
(it loses the load share and the transfer).  Decoupling pays off only where the running
batches are small (the generation tail) or the acceptance of all k drafts is near 1.

Not modelled: a verifier that does not wait for a rejected request's redraft (it could
verify that request with no drafts, or leave it out of the iteration); SpecActor's own
recovery and draft-tree choices; the drafter's memory freed on the target GPUs (the target's
KV plan stays the coupled one); the drafter GPUs' memory; contention of the link.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlsim.hardware import ops

__all__ = ["DecoupledDrafting", "decoupled_iteration_s", "hidden_probability", "TOKEN_ID_BYTES", "HIDDEN_LAYERS"]

#: Bytes of one draft token id sent to the target (assumed: int32).
TOKEN_ID_BYTES = 4
#: Target hidden states a drafter reads per token, in units of the hidden size: EAGLE-3 fuses
#: low, middle and high layers' features (EAGLE-3, arXiv:2503.01840; vLLM's eagle3 auxiliary
#: hidden states), EAGLE and MTP the last hidden state; a draft model reads token ids only.
HIDDEN_LAYERS = {"eagle3": 3, "eagle": 1, "mtp": 1, "draft_model": 0}


def hidden_probability(p_all_accepted: float, batch: int) -> float:
    """Probability that a lock-step iteration of ``batch`` independent requests hides its
    drafting: every request's pre-drafted next round is valid (all k drafts accepted and the
    bonus token guessed, ``p = P(A_{k+1} = k + 1)`` each), ``p ** batch`` (1 for an empty batch)."""
    return float(p_all_accepted) ** max(0, int(batch))


def decoupled_iteration_s(verify_s, remote_s, transfer_s: float, hidden: float):
    """GPU time of one decoupled iteration (scalars or arrays): hidden with probability
    ``hidden`` (``max(verify, remote)``), else serial (``verify + remote``), plus the transfer:
    ``verify + remote - hidden * min(verify, remote) + transfer``."""
    return verify_s + remote_s - hidden * np.minimum(verify_s, remote_s) + transfer_s


@dataclass(frozen=True)
class DecoupledDrafting:
    """The decoupled drafter pool of one engine pool: ``load_share[e]`` engines served by
    engine e's drafter instance, ``p_ready[k]`` = P(A_{k+1} = k + 1), the probability that a
    request's pre-drafted next round is valid (its k drafts accepted and its bonus token
    guessed), the link of each engine to its drafter (``same_domain[e]``: NVLink, else the NIC,
    of the hardware profile ``hw``), bytes per draft token id and of the hidden states per token
    the drafter reads from the target."""

    drafter_gpus: int
    instances: int
    load_share: np.ndarray          # per engine: engines its drafter instance serves
    p_ready: np.ndarray             # by k = 0..k_max (1 at k = 0): P(A_{k+1} = k + 1)
    expected_tokens: np.ndarray     # 1 + E[A_k]: tokens the target computes per request and round, by k
    hw: object                      # rlsim.hardware.HardwareProfile
    same_domain: np.ndarray         # per engine: its drafter in its NVLink domain
    hidden_bytes_per_token: float
    token_id_bytes: float = TOKEN_ID_BYTES

    def hidden(self, batch: int, k: int) -> float:
        """Probability that an iteration of ``batch`` decoding requests with ``k`` drafts hides its drafting."""
        return hidden_probability(self.p_ready[k], batch) if k > 0 else 1.0

    def transfer_s(self, engine: int, batch: int, k: int, prefill_tokens: int = 0) -> float:
        """Link time of one iteration of ``engine``: the drafts' ids to the target, then the ids
        and hidden states of the tokens it computed back to the drafter (two sends)."""
        tokens = batch * float(self.expected_tokens[k]) + prefill_tokens
        same = bool(self.same_domain[engine])
        drafts = ops.p2p_time_s(self.hw, batch * k * self.token_id_bytes, same_domain=same)
        back = ops.p2p_time_s(self.hw, tokens * (self.token_id_bytes + self.hidden_bytes_per_token), same_domain=same)
        return float(drafts + back)

    def extra_s(self, engine: int, target_s, draft_s, reject_s: float, batch: int, k: int, prefill_tokens: int = 0):
        """GPU time of the iteration beyond the target's pass (what the engine books as
        speculative time): :func:`decoupled_iteration_s` of ``verify = target + reject`` and
        ``remote = draft x the engine's load share``, less the target's pass.  ``draft_s`` is the drafter's
        own time for the batch (0: the drafter has nothing to do, and nothing crosses the link)."""
        if k <= 0 and not np.any(draft_s):
            return reject_s + 0.0 * target_s
        total = decoupled_iteration_s(target_s + reject_s, self.load_share[engine] * draft_s,
                                      self.transfer_s(engine, batch, k, prefill_tokens), self.hidden(batch, k))
        return total - target_s
