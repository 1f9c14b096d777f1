"""One self-contained HTML page of a run, plan or bench (``--report report.html``).

The page has no external references: figures are PNGs embedded as base64 ``data:`` URIs, the
style sheet is inline.  Sections: the summary tables, the figures, the assumptions (every
``assumed`` / ``assumptions`` entry of the summary, with its value and reason), the warnings
and the resolved scenario (the YAML the run validated).  A plan's page renders its ``plan.md``
(the subset of Markdown rlsim writes: headings, paragraphs, bullets, tables, images, bold and
code spans -- a Markdown library would be one more dependency for a format rlsim controls).
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import yaml

__all__ = ["page", "run_report", "plan_report", "bench_report", "markdown_to_html", "flat_rows", "assumption_rows"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:12px}code{background:#f3f3f3;padding:0 3px}
.warn li{color:#8a4b00}h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def img(png: Path | bytes, alt: str) -> str:
    """An ``<img>`` with the PNG embedded."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def flat_rows(d: dict, prefix: str = "", skip=("warnings", "assumed", "assumptions")) -> list[list[str]]:
    """``[[dotted.key, value], ...]`` of the scalars (and short lists) of a nested dict."""
    out = []
    for k in sorted(d):
        v, key = d[k], f"{prefix}{k}"
        if k in skip:
            continue
        if isinstance(v, dict):
            out += flat_rows(v, key + ".", skip)
        elif isinstance(v, list):
            if len(v) <= 8 and all(not isinstance(x, (dict, list)) for x in v):
                out.append([key, ", ".join(_fmt(x) for x in v)])
        else:
            out.append([key, _fmt(v)])
    return out


def assumption_rows(d, path: str = "") -> list[list[str]]:
    """``[[where, name, value, why], ...]`` of every ``assumed`` / ``assumptions`` mapping in a summary."""
    out = []
    if isinstance(d, dict):
        for k in sorted(d):
            v = d[k]
            here = f"{path}.{k}" if path else k
            if k in ("assumed", "assumptions") and isinstance(v, dict):
                for name in sorted(v):
                    item = v[name]
                    if isinstance(item, dict):
                        out.append([path, name, _fmt(item.get("value", "-")), str(item.get("why", ""))])
                    else:
                        out.append([path, name, _fmt(item), ""])
            else:
                out += assumption_rows(v, here)
    return out


def _warnings(summary: dict) -> list[str]:
    w = summary.get("warnings") or []
    return [x if isinstance(x, str) else json.dumps(x, sort_keys=True) for x in w]


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """The HTML document: ``sections`` are (heading, inner HTML)."""
    body = "".join(f"<section><h2>{_e(h)}</h2>{inner}</section>" for h, inner in sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>{body}</body></html>\n")


def _common(summary: dict, resolved: dict | None, figures: list[Path]) -> list[tuple[str, str]]:
    secs = []
    if figures:
        secs.append(("Figures", "".join(f"<figure>{img(p, p.stem)}<figcaption>{_e(p.name)}</figcaption></figure>"
                                        for p in figures)))
    rows = assumption_rows(summary)
    secs.append(("Assumptions", table(rows, ["where", "assumption", "value", "why"]) if rows
                 else "<p>No assumed term is reported for this run.</p>"))
    w = _warnings(summary)
    secs.append(("Warnings", "<ul class=\"warn\">" + "".join(f"<li>{_e(x)}</li>" for x in w) + "</ul>" if w
                 else "<p>None.</p>"))
    if resolved is not None:
        secs.append(("Resolved scenario", f"<pre>{_e(yaml.safe_dump(resolved, sort_keys=True))}</pre>"))
    return secs


def run_report(result, resolved: dict | None, figures: list[Path], path: Path, text: str = "") -> Path:
    """The page of ``rlsim run``: the printed report, summary table, per-step tables (RL)."""
    s = result.summary
    secs = []
    if text:
        secs.append(("Report", f"<pre>{_e(text)}</pre>"))
    secs.append(("Summary", table(flat_rows(s), ["quantity", "value"])))
    if result.kind == "rl":
        for name, run in result.runs.items():
            df = run.steps
            secs.append((f"Steps: {name}", table([[_fmt(v) for v in r] for r in df.itertuples(index=False)],
                                                 list(df.columns))))
    secs += _common(s, resolved, figures)
    title = f"rlsim run: {s.get('scenario')} ({(s.get('model') or {}).get('name', '')} on " \
            f"{(s.get('hardware') or {}).get('profile', '')})"
    path.write_text(page(title, secs), encoding="utf-8")
    return path


def bench_report(result: dict, text: str, resolved: dict | None, path: Path) -> Path:
    """The page of ``rlsim bench``: vLLM's report text and the result's metrics."""
    secs = [("Report", f"<pre>{_e(text)}</pre>"), ("Result", table(flat_rows(result), ["metric", "value"]))]
    secs += _common(result, resolved, [])
    path.write_text(page(f"rlsim bench: {result.get('model_id', '')}", secs), encoding="utf-8")
    return path


def plan_report(md_path: Path, resolved: dict | None, path: Path) -> Path:
    """The page of ``rlsim plan``: its plan.md with the images embedded, and the resolved scenario."""
    md = md_path.read_text(encoding="utf-8")
    body = markdown_to_html(md, md_path.parent)
    secs = [("Plan", body)]
    if resolved is not None:
        secs.append(("Resolved scenario", f"<pre>{_e(yaml.safe_dump(resolved, sort_keys=True))}</pre>"))
    first = md.splitlines()[0].lstrip("# ").strip() if md else "plan"
    path.write_text(page(f"rlsim plan: {first}", secs), encoding="utf-8")
    return path


def _inline(text: str, base: Path) -> str:
    out = _e(text)
    out = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)",
                 lambda m: img(base / html.unescape(m.group(2)), html.unescape(m.group(1)))
                 if (base / html.unescape(m.group(2))).is_file() else m.group(0), out)
    out = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def markdown_to_html(md: str, base: Path) -> str:
    """The Markdown subset rlsim writes (module docstring) as HTML; images under ``base`` embedded."""
    out, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")) + 1)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip(), base)}</h{level}>")
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            rows = [r for r in block[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c, base)}</th>" for c in block[0]) + "</tr></thead>"
                       "<tbody>" + "".join("<tr>" + "".join(f"<td>{_inline(c, base)}</td>" for c in r) + "</tr>"
                                           for r in rows) + "</tbody></table>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:], base)}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line, base)}</p>")
        i += 1
    return "\n".join(out)
