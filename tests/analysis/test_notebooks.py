"""Execute every notebook in notebooks/ (tiny settings: RLSIM_NOTEBOOK_SMALL=1) and check that
it ran without errors and drew its plots; notebooks are committed without outputs.

Skipped when nbclient / ipykernel are not installed (they are in the dev extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# notebooks that must draw at least this many images (others: at least none, errors still fail)
MIN_IMAGES = {"draft_length_sweep.ipynb": 4, "capacity_planning.ipynb": 1, "rollout_policies.ipynb": 3,
              # parity plots need the measured traces; without them the notebook says so and stops
              "calibration.ipynb": 1 if (REPO.parent / "shared" / "traces" / "aiconfigurator").is_dir() else 0}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name}: clear the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("RLSIM_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("RLSIM_NOTEBOOK_OUT", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= MIN_IMAGES.get(path.name, 0), f"{path.name}: {images} images"
