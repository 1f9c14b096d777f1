"""rlsim run --explain: per-engine time in target passes, drafting, rejection sampling and host."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from rlsim.cli import app

from helpers import eagle, scenario


def test_explain_prints_each_engines_split_and_the_shares(tmp_path):
    loaded = scenario(prompts=8, gpus=2, response_tokens=64, spec=eagle(3, 0.7))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(loaded.raw))
    result = CliRunner().invoke(app, ["run", str(path), "--explain"])
    assert result.exit_code == 0, result.output
    text = result.stdout[result.stdout.index("time per engine (s):"):]
    lines = text.splitlines()
    assert lines[1].split() == ["engine", "target", "pass", "drafting", "rejection", "host", "exposed", "draft", "host",
                                "busy"]
    assert [ln.split()[0] for ln in lines[2:5]] == ["0", "1", "all"]
    cells = [float(x) for x in lines[4].split()[1:]]
    assert cells[1] > 0 and cells[2] > 0 and abs(sum(cells[:5]) - cells[5]) < 1e-3 * cells[5]
    assert lines[5].startswith("  shares of busy time: target pass ")
