"""The public API: __all__ lists every public name of the package (as httpx's test does), each
documented; RunResult's plot methods return readable figures."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import rlsim
from rlsim.errors import ConfigError
from rlsim.results.figcheck import figure_problems

REPO = Path(__file__).resolve().parents[1]


def test_all_lists_every_public_name():
    # dir(): the lazily imported names count before their first use (rlsim.__getattr__)
    public = {n for n in dir(rlsim) if not n.startswith("_") and not isinstance(getattr(rlsim, n), types.ModuleType)}
    assert public == set(rlsim.__all__) - {"__version__"}
    for name in rlsim.__all__:
        if name != "__version__":
            assert (getattr(rlsim, name).__doc__ or "").strip(), name


def test_import_is_lazy_and_unknown_names_say_so():
    import subprocess
    import sys

    code = "import sys, rlsim.cli; print(sorted(m for m in ('pandas', 'scipy.stats') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # rlsim --help loads neither
    with pytest.raises(AttributeError, match="module 'rlsim' has no attribute 'simulat'"):
        rlsim.simulat


def test_plot_methods(small_scenario):
    r = rlsim.simulate(small_scenario, baseline=False)
    assert figure_problems(r.plot_running_batch()) == []
    with pytest.raises(ConfigError) as e:
        r.plot_gantt()
    assert str(e.value) == "RunResult.plot_gantt() needs an RL result (this one is a rollout)"
    rl = rlsim.simulate(REPO / "scenarios" / "qwen8b_async.yaml", baseline=False,
                        overrides=["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=2",
                                   "rl.num_steps=3", "workload.response_length.mean_tokens=300"])
    for fig in (rl.plot_breakdown(), rl.plot_gantt(), rl.plot_running_batch()):
        assert figure_problems(fig) == [] and fig.axes[0].get_title()
