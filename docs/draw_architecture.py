"""Draw docs/architecture.png: the rooms of rlsim and what flows between them.

    python docs/draw_architecture.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

#: (name, x, y, width, height, lines): the rooms, laid out left (input) to right (output).
BOXES = [
    ("scenario", 0.2, 6.6, 2.6, 1.1, ["scenario YAML + --set", "rlsim.config (pydantic)", "_yaml, _pydantic_errors"]),
    ("catalog", 0.2, 4.9, 2.6, 1.3, ["hardware profiles", "models / catalog / HF config", "calibration (fitted params)"]),
    ("resolved", 3.4, 5.6, 2.6, 1.6, ["rlsim.sim.build.resolve", "Resolved: hw, arch, layout,", "memory plan, drafter", "(every check: ConfigError)"]),
    ("factory", 6.6, 6.4, 2.8, 1.1, ["rlsim.sim.engines", "engine factory, spec runtime", "sequence tables"]),
    ("cost", 6.6, 4.4, 2.8, 1.5, ["rlsim.cost.ForwardModel", "rlsim.hardware.ops (kernels)", "rlsim.speculation.drafter", "(pure functions)"]),
    ("engine", 10.0, 5.2, 3.4, 2.5, ["rlsim.engine.Engine", "  scheduler + policy (seam)", "  kv (the only KV owner)", "  requests, passes, jump", "  params (step time), stats",
                                     "acceptance draws (speculation)"]),
    ("pools", 9.4, 2.0, 4.0, 1.9, ["engines driven by simpy processes", "rlsim.sim.rollout: one batch", "rlsim.rl: sync / async pipelines, engine pool,",
                                   "  trainer + weight-sync costs (rlsim.training)"]),
    ("api", 14.0, 3.8, 2.6, 1.3, ["rlsim.simulate()", "-> RunResult", "summary, sequences, steps"]),
    ("writers", 14.0, 1.6, 2.6, 1.6, ["rlsim.results", "summary.json, parquet,", "PNG, trace.json", "rlsim.cli renders"]),
    ("analysis", 14.0, 6.0, 2.6, 1.3, ["rlsim.analysis", "sweep, plan, plots", "(many simulate() calls)"]),
]

#: (from, to, label)
ARROWS = [
    ("scenario", "resolved", "Scenario"), ("catalog", "resolved", "profile, arch"), ("resolved", "factory", ""),
    ("resolved", "cost", "ForwardModel"), ("factory", "engine", "engines"), ("cost", "engine", "pass times"),
    ("engine", "pools", "segments, finished ids"), ("pools", "api", "RunResult"), ("api", "writers", "records"), ("analysis", "api", "points"),
]


def _centre(box):
    _, x, y, w, h, _ = box
    return x + w / 2, y + h / 2


def _edge(box, towards):
    """Where the line from the box's centre towards ``towards`` leaves the box (padded)."""
    _, x, y, w, h, _ = box
    (cx, cy), (tx, ty) = _centre(box), towards
    dx, dy = tx - cx, ty - cy
    scale = min((w / 2 + 0.12) / abs(dx) if dx else float("inf"), (h / 2 + 0.12) / abs(dy) if dy else float("inf"))
    return cx + dx * scale, cy + dy * scale


def main(out: Path = Path(__file__).with_name("architecture.png")) -> None:
    fig, ax = plt.subplots(figsize=(13.5, 6.6), dpi=110)
    boxes = {b[0]: b for b in BOXES}
    for name, x, y, w, h, lines in BOXES:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc="#eef3fb" if name != "engine" else "#fdf1dc",
                                    ec="#3b5b8c", lw=1.2))
        ax.text(x + 0.12, y + h - 0.2, lines[0], fontsize=9.5, weight="bold", va="top")
        for i, line in enumerate(lines[1:]):
            ax.text(x + 0.12, y + h - 0.52 - 0.27 * i, line, fontsize=8.5, va="top")
    for a, b, label in ARROWS:
        start = _edge(boxes[a], _centre(boxes[b]))
        end = _edge(boxes[b], _centre(boxes[a]))
        (x0, y0), (x1, y1) = start, end
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#555",
                                     shrinkA=0, shrinkB=0, lw=1.0, zorder=3))
        if label:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.08, label, fontsize=7.5, color="#333", ha="center",
                    bbox=dict(fc="white", ec="none", pad=0.5))
    ax.set_xlim(0, 16.8)
    ax.set_ylim(1.5, 7.9)
    ax.axis("off")
    ax.set_title("rlsim: scenario -> resolved -> engines / pools -> records -> writers", fontsize=11)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
