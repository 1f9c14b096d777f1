"""Where speculative decoding pays: the regimes of the speculative-decoding issue in one PNG.

1. speedup vs running batch (EAGLE-3 on Qwen3-8B, H100) for a strong and a weak drafter, at
   short and long contexts -- speedup falls as the batch grows; a weak drafter at large batch
   is slower than no speculation; long contexts keep it paying (KV reads dominate);
2. the best k vs running batch -- it shrinks as the batch grows;
3. verify-pass cost (4 tokens per sequence) over a 1-token decode step vs batch for
   Qwen3-235B-A22B (MoE, 22B active) and dense Qwen3-32B, TP8 on H100 -- the MoE verify costs
   relatively more at small batch (more distinct experts touched).

    python benchmarks/spec_regimes.py [--out spec_regimes.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import eagle, scenario  # noqa: E402

from rlsim.cost import PassShape  # noqa: E402
from rlsim.sim import resolve, simulate_rollout  # noqa: E402

BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def speedup(batch: int, k: int, rate: float, prompt: int = 128, response: int = 256) -> float:
    res = resolve(scenario(prompts=batch, prompt_tokens=prompt, response_tokens=response, spec=eagle(k, rate)))
    return simulate_rollout(res).summary["speedup"]["rollout"]


def best_k(batch: int, rate: float) -> int:
    ks = list(range(1, 9))
    return ks[int(np.argmax([speedup(batch, k, rate) for k in ks]))]


def verify_ratio(model: str, batch: int, **engine) -> float:
    fwd = resolve(scenario(model=model, gpus=8, tp=8, **engine)).forward_model()
    ctx = 2000.0
    one = fwd.time_s(PassShape(batch, batch, batch, batch * ctx))
    verify = fwd.time_s(PassShape(4 * batch, 4 * batch, batch, batch * (ctx + 3), decode_pairs=batch * (4 * (ctx + 3) - 6)))
    return verify / one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="spec_regimes.png")
    args = ap.parse_args()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), dpi=110)
    ax = axes[0]
    for rate, k, style in ((0.8, 3, "-o"), (0.3, 5, "-s")):
        for prompt, resp, alpha in ((128, 256, 1.0), (8192, 256, 0.5)):
            sp = [speedup(b, k, rate, prompt, resp) for b in BATCHES]
            print(f"speedup a={rate} k={k} context~{prompt}: " + ", ".join(f"B{b}={x:.2f}" for b, x in zip(BATCHES, sp)))
            ax.plot(BATCHES, sp, style, alpha=alpha, label=f"a={rate}, k={k}, context {prompt + resp // 2}")
    ax.axhline(1.0, color="k", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("running batch (sequences)")
    ax.set_ylabel("rollout speedup")
    ax.set_title("EAGLE-3 on Qwen3-8B, H100")
    ax.legend(fontsize=7)
    ax = axes[1]
    for rate in (0.6, 0.8, 0.9):
        ks = [best_k(b, rate) for b in BATCHES]
        print(f"best k a={rate}: " + ", ".join(f"B{b}={k}" for b, k in zip(BATCHES, ks)))
        ax.plot(BATCHES, ks, "-o", label=f"a={rate}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("running batch (sequences)")
    ax.set_ylabel("best k (1..8)")
    ax.set_title("best draft length shrinks with batch")
    ax.legend(fontsize=8)
    ax = axes[2]
    moe = [verify_ratio("Qwen3-235B-A22B", b, enable_expert_parallel=True) for b in BATCHES]
    dense = [verify_ratio("Qwen3-32B", b) for b in BATCHES]
    print("verify/decode MoE: " + ", ".join(f"B{b}={x:.2f}" for b, x in zip(BATCHES, moe)))
    print("verify/decode dense: " + ", ".join(f"B{b}={x:.2f}" for b, x in zip(BATCHES, dense)))
    ax.plot(BATCHES, moe, "-o", label="Qwen3-235B-A22B (MoE, TP8/EP8)")
    ax.plot(BATCHES, dense, "-s", label="Qwen3-32B (dense, TP8)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("running batch (sequences)")
    ax.set_ylabel("verify pass (k=3) / decode step")
    ax.set_title("MoE verify costs more at small batch")
    ax.legend(fontsize=8)
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, metadata={"Software": None})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
