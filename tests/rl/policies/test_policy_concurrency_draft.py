"""Concurrency-aware draft sizing: the engine settings it owns and its k against brute force."""

from __future__ import annotations

import numpy as np
from helpers import rl_policy_scenario

from rlsim.rl.policies.concurrency_draft import ConcurrencyDraft, ConcurrencyDraftSeam
from rlsim.rl.policies.run import policy_resolved
from rlsim.sim import resolve
from rlsim.sim.engines import spec_runtime


def test_policy_owns_k_ceiling_and_goodput_rule():
    res = policy_resolved(resolve(rl_policy_scenario({"kind": "concurrency_draft", "max_draft_tokens": 6})))
    spec = res.speculative
    assert spec.num_speculative_tokens == 6 and spec.adaptive_k.enabled and spec.adaptive_k.min_k == 0
    no_spec = rl_policy_scenario(None, spec=False).scenario
    assert ConcurrencyDraftSeam(ConcurrencyDraft()).scenario(no_spec) is no_spec


def test_k_is_the_goodput_argmax_and_shrinks_with_concurrency():
    res = policy_resolved(resolve(rl_policy_scenario({"kind": "concurrency_draft", "max_draft_tokens": 6})))
    rt = spec_runtime(res, np.arange(4), np.full(4, 1000), 3, res.forward_model())
    chosen = {}
    for batch in (1, 8, 64, 512):
        # 1,024 tokens per request: the rule's context bucket is [1024, 2048), priced at its
        # geometric middle 1024 x sqrt(2) (rlsim.speculation.runtime)
        mid = 1024.0 * np.sqrt(2.0) * batch
        good = [batch * (1 + rt.expected_accepted[k]) / rt.step_time_s(batch, mid, k) for k in range(7)]
        chosen[batch] = rt.k_for(batch, 1024.0 * batch)
        assert chosen[batch] == int(np.argmax(good)), (batch, good)
    assert chosen[1] >= chosen[64] >= chosen[512]
    assert chosen[1] > chosen[512]
