"""What a speculative round costs beyond the kernels: drafting overheads, verification extras, host.

A speculative step in vLLM V1 (``vllm/v1/worker/gpu_model_runner.py``: ``execute_model`` ->
``_sample`` -> ``propose_draft_token_ids``; ``vllm/v1/spec_decode/``) is, per round:

1. **verify**: the target's forward over ``B x (1 + k)`` tokens (the pending token plus ``k``
   drafts per request, KV slots reserved for all of them -- the scheduler's lookahead slots),
   logits at every position, padded to a CUDA-graph capture size
   (:meth:`rlsim.cost.ForwardModel.decode_times_s`);
2. **rejection sampler** (``vllm/v1/sample/rejection_sampler.py``): greedy requests compare the
   drafts with the target argmax; random ones (temperature > 0, RL's temperature 1) compute the
   target probabilities at every draft position (``compute_probs``: temperature, top-k / top-p),
   accept with ``p_target(draft)`` (``draft_probs`` is None: drafts count as deterministic) and
   sample a recovered token; the bonus token comes from the normal sampler (top-p / top-k apply).
   Timed as a floor: the verify pass costs at least ``verify_us_per_draft_token`` per draft token
   more than a plain decode step of the same batch (fitted; while the target's GEMMs are
   memory-bound the extra tokens are nearly free in the kernel model, so the floor is the
   rejection sampler, the probabilities and metadata at every draft position; once they are
   compute-bound the kernels' own growth exceeds it and nothing is added), plus, when sampling at
   temperature > 0, ``RANDOM_SAMPLING_PASSES`` fp32 passes over the ``B x (1 + k)`` rows of
   logits (softmax, uniform draws, recovered-token distribution; assumed);
3. **drafting** (``EagleProposer.propose`` in ``vllm/v1/spec_decode/eagle.py``, also MTP and
   the draft model): the first draft forward over the accepted tokens + bonus (padded to
   ``1 + k`` per request), then ``k - 1`` single-token forwards, each followed by an argmax and an
   update of positions, slot mapping and attention metadata; their kernels are timed by the
   drafter's ForwardModel (a pass without a CUDA graph waits for its dispatch), and the
   rest is ``draft_round_us + k x draft_step_us + B x draft_seq_us`` (fitted).  That rest is host
   work (input preparation, attention metadata per step, the GPU -> CPU copy of the draft ids
   the scheduler waits for): it was measured on vLLM 0.10 / 0.11, which ran speculation
   synchronously, so it is serial there; with async scheduling (vLLM PR #31998 onwards,
   :mod:`rlsim.config.vllm`; hardware_and_models.md C1) it runs while the GPU works and is
   priced as the engine's own host time is -- hidden behind the GPU time but for the exposed part;
4. **n-gram** (``NgramProposer.propose`` in ``vllm/v1/spec_decode/ngram_proposer.py``): a host
   KMP match of each request's last n tokens against its whole token history, after the step's
   tokens are known and before the next step is scheduled -- on the critical path (vLLM cannot
   overlap it: async scheduling works only with GPU drafters, :mod:`rlsim.config.vllm`), time
   ``ngram_round_us + B x ngram_seq_us + history tokens x ngram_ns_per_context_token + draft
   tokens x ngram_us_per_draft_token`` (fitted).  The draft-token term carries the source's form:
   it states n-gram drafting as a share of the verify pass, which grows with the verified tokens;
   which host work grows so is assumed (the proposal's draft-id lists becoming the scheduler's
   ``spec_token_ids`` and the next step's draft metadata), not timed;
   a request without a match proposes nothing and decodes normally (no draft tokens in the pass);
5. **host**: ``spec_host_us`` per speculative step beyond the engine's own host model.

The parameters live in the hardware profile's ``speculation`` section
(:class:`rlsim.hardware.profile.SpeculationCosts`), fitted by ``rlsim calibrate spec``
(:mod:`rlsim.calibration.spec`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpecCosts", "RANDOM_SAMPLING_PASSES"]

#: fp32 passes over the verify logits of a random (temperature > 0) rejection sampler: target
#: softmax, accept test, recovered-token distribution (assumed; greedy needs only the argmax).
RANDOM_SAMPLING_PASSES = 3


@dataclass(frozen=True)
class SpecCosts:
    """The fitted terms of one profile (seconds), see the module docstring."""

    draft_round_s: float
    draft_step_s: float
    draft_seq_s: float
    verify_s_per_draft_token: float
    spec_host_s: float
    ngram_round_s: float
    ngram_seq_s: float
    ngram_s_per_context_token: float
    ngram_s_per_draft_token: float = 0.0

    @classmethod
    def from_profile(cls, hw) -> "SpecCosts":
        """From a profile's ``speculation`` section (:class:`~rlsim.hardware.profile.SpeculationCosts`):
        the verification floor scaled by the bf16 peak of the GPU it was fitted on over ``hw``'s."""
        section = hw.speculation
        scale = section.reference_bf16_tflops / hw.gpu.peak_tflops.bf16
        return cls(section.draft_round_us * 1e-6, section.draft_step_us * 1e-6, section.draft_seq_us * 1e-6,
                   section.verify_us_per_draft_token * 1e-6 * scale, section.spec_host_us * 1e-6,
                   section.ngram_round_us * 1e-6, section.ngram_seq_us * 1e-6,
                   section.ngram_ns_per_context_token * 1e-9, section.ngram_us_per_draft_token * 1e-6)

    def draft_overhead_s(self, batch: int, k: int) -> float:
        """GPU idle time of a GPU drafter's round beyond its kernels (0 without drafts)."""
        if k <= 0 or batch <= 0:
            return 0.0
        return self.draft_round_s + k * self.draft_step_s + batch * self.draft_seq_s

    def verify_extra_s(self, draft_tokens, kernel_growth_s):
        """Verification time beyond the target's kernels for ``draft_tokens`` draft tokens, when the
        kernels of the verify pass take ``kernel_growth_s`` more than a plain decode step's
        (scalars or arrays): ``max(0, verify_s_per_draft_token x draft_tokens - kernel_growth_s)``."""
        d = np.maximum(np.asarray(draft_tokens, dtype=np.float64), 0.0)
        return np.maximum(self.verify_s_per_draft_token * d - np.asarray(kernel_growth_s, dtype=np.float64), 0.0)

    def ngram_host_s(self, batch: int, history_tokens, draft_tokens: int = 0):
        """Host time of the n-gram proposer over ``batch`` requests with ``history_tokens`` tokens
        in all (scalar or array) proposing ``draft_tokens`` draft tokens."""
        h = np.asarray(history_tokens, dtype=np.float64)
        return (self.ngram_round_s + batch * self.ngram_seq_s + self.ngram_s_per_draft_token * draft_tokens
                + self.ngram_s_per_context_token * h)
