"""Where speculative decoding pays: the regimes of the speculative-decoding issue in one PNG.

1. simulated speedup vs running batch (EAGLE-3 on Qwen3-8B, H100) for a strong and a weak
   drafter, at short and long contexts, and n-gram with the acceptance fitted to the math
   (GSM8K) and code-editing (InstructCoder) traces -- speedup falls as the batch grows and goes
   below 1 at the cost model's break-even batch (printed per method);
2. the best k vs running batch -- it shrinks as the batch grows;
3. a draft tree (5 levels, top-8, 32 tokens) over the k = 5 chain, tokens/s from the cost model
   (Llama-3.1-8B EAGLE-3) -- the tree wins at small batch and loses once the verify is compute-bound;
4. verify-pass cost (4 tokens per sequence) over a 1-token decode step vs batch for
   Qwen3-235B-A22B (MoE, 22B active) and dense Qwen3-32B, TP8 on H100 -- the MoE verify costs
   relatively more at small batch (more distinct experts touched).

Costs: the profile's fitted speculation terms (rlsim calibrate spec).

    python benchmarks/spec_regimes.py [--out benchmarks/spec_regimes.png]
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
from rlsim.calibration.acceptance import load_fitted  # noqa: E402
from rlsim.sim import resolve, simulate_rollout  # noqa: E402
from rlsim.sim.engines import engine_params, spec_runtime  # noqa: E402
from rlsim.speculation.regimes import break_even_batch  # noqa: E402
from rlsim.speculation.tree import DraftTree, goodput  # noqa: E402

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


def ngram_speedup(batch: int, name: str, k: int = 3, prompt: int = 128, response: int = 256) -> float:
    spec = {"method": "ngram", "num_speculative_tokens": k, "acceptance": load_fitted(name).model_dump()}
    res = resolve(scenario(prompts=batch, prompt_tokens=prompt, response_tokens=response, spec=spec))
    return simulate_rollout(res).summary["speedup"]["rollout"]


def break_even(spec: dict, model: str = "Qwen3-8B", ctx: float = 256.0) -> int | None:
    res = resolve(scenario(model=model, spec=spec))
    rt = spec_runtime(res, np.arange(2), np.full(2, 64), 0, res.forward_model())
    return break_even_batch(rt, engine_params(res, True), ctx)


def tree_over_chain(batch: int, ctx: float = 2000.0) -> float:
    spec = {"method": "eagle3", "model": "EAGLE3-Llama-3.1-8B", "num_speculative_tokens": 5,
            "acceptance": {"kind": "per_position", "rates": [0.78, 0.58, 0.43, 0.29, 0.24]}}
    res = resolve(scenario(model="Llama-3.1-8B", spec=spec))
    rt = spec_runtime(res, np.arange(2), np.full(2, 64), 0, res.forward_model())
    return goodput(rt, batch, batch * ctx, 5, DraftTree(5, 8, 32)) / goodput(rt, batch, batch * ctx, 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "spec_regimes.png"))
    args = ap.parse_args()
    for label, spec in (("eagle3 a=0.8 k=3", eagle(3, 0.8)), ("eagle3 a=0.3 k=5", eagle(5, 0.3)),
                        ("ngram gsm8k k=3", {"method": "ngram", "num_speculative_tokens": 3,
                                             "acceptance": load_fitted("gsm8k/ngram").model_dump()}),
                        ("ngram instructcoder k=3", {"method": "ngram", "num_speculative_tokens": 3,
                                                     "acceptance": load_fitted("instructcoder/ngram").model_dump()})):
        print(f"break-even batch (cost model, Qwen3-8B H100, ~256-token contexts) {label}: {break_even(spec)}")
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.6), dpi=110)
    ax = axes[0]
    for rate, k, style in ((0.8, 3, "-o"), (0.3, 5, "-s")):
        for prompt, resp, alpha in ((128, 256, 1.0), (8192, 256, 0.5)):
            sp = [speedup(b, k, rate, prompt, resp) for b in BATCHES]
            print(f"speedup a={rate} k={k} context~{prompt}: " + ", ".join(f"B{b}={x:.2f}" for b, x in zip(BATCHES, sp)))
            ax.plot(BATCHES, sp, style, alpha=alpha, label=f"a={rate}, k={k}, context {prompt + resp // 2}")
    for name, style in (("gsm8k/ngram", "--^"), ("instructcoder/ngram", "--v")):
        sp = [ngram_speedup(b, name) for b in BATCHES]
        print(f"speedup {name} k=3: " + ", ".join(f"B{b}={x:.2f}" for b, x in zip(BATCHES, sp)))
        ax.plot(BATCHES, sp, style, label=f"n-gram, {name.split('/')[0]} acceptance (fitted), k=3")
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
    ratio = [tree_over_chain(b) for b in BATCHES]
    print("tree (5x8, 32 tokens) / chain k=5 goodput: " + ", ".join(f"B{b}={x:.2f}" for b, x in zip(BATCHES, ratio)))
    ax.plot(BATCHES, ratio, "-o", color="C4")
    ax.axhline(1.0, color="k", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("running batch (sequences)")
    ax.set_ylabel("tree / chain tokens per second")
    ax.set_title("draft tree pays only at small batch (Llama-3.1-8B)")
    ax = axes[3]
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
