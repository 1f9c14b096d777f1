"""Write a fitted hardware profile back to YAML, every number with its provenance comment.

The writer re-emits the whole file from the profile data: numbers that were fitted get a
``fit:`` comment (key, data set, rows, in-sample and held-out error); every other number keeps
the trailing comment it had in the original file.  The original header comment is kept and a
calibration note is appended to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rlsim.errors import CalibrationError
from rlsim.hardware.profile import HardwareProfile

__all__ = ["read_comments", "dump_profile_yaml", "write_profile"]

_LINE = re.compile(r"^(?P<ind>\s*)(?P<key>[A-Za-z0-9_]+):(?P<rest>.*)$")


def _split_comment(rest: str) -> tuple[str, str | None]:
    """``value  # comment`` -> (value, comment), ignoring ``#`` inside quotes."""
    q = None
    for i, ch in enumerate(rest):
        if ch in "\"'":
            q = None if q == ch else (ch if q is None else q)
        elif ch == "#" and q is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].rstrip(), rest[i + 1:].strip()
    return rest.rstrip(), None


def read_comments(text: str) -> tuple[list[str], dict[tuple, str]]:
    """(header comment lines, {key path: trailing comment}) of a block-style YAML file."""
    header: list[str] = []
    comments: dict[tuple, str] = {}
    stack: list[tuple[int, str]] = []
    started = False
    for line in text.splitlines():
        if not started and (line.startswith("#") or not line.strip()):
            if line.startswith("#"):
                header.append(line)
            continue
        m = _LINE.match(line)
        if not m:
            continue
        started = True
        ind = len(m["ind"])
        while stack and stack[-1][0] >= ind:
            stack.pop()
        stack.append((ind, m["key"]))
        _, comment = _split_comment(m["rest"])
        if comment:
            comments[tuple(k for _, k in stack)] = comment
    return header, comments


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e15:
            return str(int(v)) if abs(v) >= 1 or v == 0 else f"{v:.4g}"
        return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.4g}"
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_.\-/ ]+", s) and not re.fullmatch(r"[0-9.eE+\-]+|true|false|null|yes|no|on|off", s, re.I):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fallback_comment(path: tuple, v: Any) -> str | None:
    """A source comment for numbers the original file did not have."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return None
    if path[:2] == ("calibration", "errors"):
        return "rlsim calibrate fit: |error| as a fraction (cv_ = grouped k-fold held-out)"
    if path[:2] == ("engine", "fit"):
        return None  # the end-to-end fit's own provenance (its source line says what it is)
    return "schema default (not fitted)"


def _emit(data: dict, path: tuple, ind: int, comments: dict[tuple, str], lines: list[str]) -> None:
    pad = " " * ind
    for k, v in data.items():
        p = path + (k,)
        if isinstance(v, dict) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v) and \
                all(not isinstance(x, dict) for x in v.values()):
            text = f"{pad}{k}: {{" + ", ".join(f"{n}: {_scalar(x)}" for n, x in v.items()) + "}"
        elif isinstance(v, dict):
            if not v:
                text = f"{pad}{k}: {{}}"
            else:
                c = comments.get(p)
                lines.append(f"{pad}{k}:" + (f"  # {c}" if c else ""))
                _emit(v, p, ind + 2, comments, lines)
                continue
        else:
            text = f"{pad}{k}: {_scalar(v)}"
        c = comments.get(p) or _fallback_comment(p, v)
        if c:
            text = f"{text:<40} # {c}" if len(text) < 40 else f"{text}  # {c}"
        lines.append(text)


def dump_profile_yaml(data: dict, header: list[str], comments: dict[tuple, str]) -> str:
    lines = list(header)
    _emit(data, (), 0, comments, lines)
    return "\n".join(lines) + "\n"


def _writer(note: str) -> str:
    """Which calibration step wrote a header note: ``engine`` (rlsim calibrate e2e, notes
    starting "engine:"), ``routing`` (skewed MoE routing, "skewed_routing:"), else ``kernel``
    (rlsim calibrate fit / transfer)."""
    body = note.removeprefix("# [calibrate]").strip()
    return "engine" if body.startswith("engine:") else "routing" if body.startswith("skewed_routing:") else "kernel"


def _replaces(writer: str | None, old: str) -> bool:
    """A step replaces its own notes; a kernel refit also the routing notes (it refits them)."""
    return writer == old or (writer == "kernel" and old == "routing")


def write_profile(original: Path | None, data: dict, out: Path, fitted_comments: dict[tuple, str],
                  header_note: list[str]) -> HardwareProfile:
    """Validate ``data``, merge comments (fitted ones win) and write ``out``."""
    hw = HardwareProfile.model_validate(data)  # a bug if this fails: the fit keeps bounds
    header, comments = ([], {})
    if original is not None and original.is_file():
        header, comments = read_comments(original.read_text(encoding="utf-8"))
    mine = _writer(header_note[0]) if header_note else None
    header = [h for h in header if not (h.startswith("# [calibrate]") and _replaces(mine, _writer(h)))]
    header += [f"# [calibrate] {n}" for n in header_note]
    comments.update(fitted_comments)
    clean = hw.model_dump(mode="python", exclude_defaults=False)
    # keep the on-disk order of the original data (model_dump follows the schema order)
    text = dump_profile_yaml(clean, header, comments)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"{out}: cannot write the profile ({exc.strerror})") from None
    from rlsim.hardware.profile import _load_file

    return _load_file(out, None)  # round-trip check
