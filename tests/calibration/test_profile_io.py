"""Profile writing: each calibration step replaces its own header notes and keeps the others'."""

import yaml

from rlsim.calibration.profile_io import write_profile
from rlsim.hardware import load_profile


def _header(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# [calibrate]")]


def test_e2e_and_kernel_notes_replace_only_their_own(tmp_path):
    original = load_profile("h100_sxm").source
    data = yaml.safe_load(open(original, encoding="utf-8"))
    first = tmp_path / "a.yaml"
    write_profile(type(tmp_path)(original), data, first, {}, ["engine: fitted once."])
    kernel_notes = [h for h in _header(first) if "engine:" not in h]
    assert kernel_notes and _header(first)[-1] == "# [calibrate] engine: fitted once."
    second = tmp_path / "b.yaml"
    write_profile(first, data, second, {}, ["engine: fitted again."])
    assert _header(second) == kernel_notes + ["# [calibrate] engine: fitted again."]
    third = tmp_path / "c.yaml"
    write_profile(second, data, third, {}, ["Efficiencies refitted."])
    assert _header(third) == ["# [calibrate] engine: fitted again.", "# [calibrate] Efficiencies refitted."]


def test_a_kernel_refit_replaces_the_routing_note_but_keeps_the_e2e_note(tmp_path):
    original = load_profile("h100_sxm").source
    data = yaml.safe_load(open(original, encoding="utf-8"))
    a, b, c = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    write_profile(type(tmp_path)(original), data, a, {}, ["engine: fitted."])
    write_profile(a, data, b, {}, ["skewed_routing: fitted."])
    assert _header(b)[-2:] == ["# [calibrate] engine: fitted.", "# [calibrate] skewed_routing: fitted."]
    write_profile(b, data, c, {}, ["Efficiencies refitted."])
    assert _header(c) == ["# [calibrate] engine: fitted.", "# [calibrate] Efficiencies refitted."]
