"""Digests of every shipped scenario's summary.json: a behaviour-preserving change keeps them.

``python tests/golden/golden_digest.py`` rewrites ``scenario_hashes.json`` (run it only when a change
alters outputs on purpose, and say so in the commit); ``--full`` also digests the full-size
scenarios (minutes), which the tests check only with ``RLSIM_GOLDEN_FULL=1``.

The digest is the sha256 of summary.json with every float rounded to 10 significant digits:
same machine, same bytes is checked by comparing the files themselves; the rounding keeps the
digest stable across CPUs whose vectorised math differs in the last bit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HASHES = Path(__file__).with_name("scenario_hashes.json")
#: Overrides that make every shipped scenario quick enough for the test suite.
QUICK = ["workload.num_prompts_per_step=32"]


def scenarios() -> list[str]:
    return sorted(p.stem for p in (REPO / "scenarios").glob("*.yaml"))


def _round(obj):
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    return obj


def digest(name: str, overrides: list[str]) -> str:
    """sha256 of the scenario's summary.json (floats rounded, see the module docstring)."""
    from rlsim import load_scenario
    from rlsim.results.writers import _clean
    from rlsim.rl.run import simulate_rl
    from rlsim.sim import resolve, simulate_rollout

    res = resolve(load_scenario(REPO / "scenarios" / f"{name}.yaml", overrides))
    summary = (simulate_rl(res) if res.scenario.rl is not None else simulate_rollout(res)).summary
    text = json.dumps(_round(_clean(summary)), indent=2, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def main(full: bool) -> None:
    old = json.loads(HASHES.read_text()) if HASHES.exists() else {}
    new = {"quick_overrides": QUICK, "quick": {n: digest(n, QUICK) for n in scenarios()}}
    new["full"] = {n: digest(n, []) for n in scenarios()} if full else old.get("full", {})
    for part in ("quick", "full"):
        for n, h in new[part].items():
            if old.get(part, {}).get(n) != h:
                print(f"{part} {n}: {old.get(part, {}).get(n)} -> {h}")
    HASHES.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main("--full" in sys.argv[1:])
