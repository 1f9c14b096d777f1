"""Is a matplotlib figure readable in a review?  The checks rlsim's figure tests apply to every
PNG it writes (tests/results/test_figures.py patches ``Figure.savefig`` to run them):

* every axes that draws data has an x and a y label and a title (its own or the figure's);
* it draws something (lines, collections, patches or images);
* no visible text is clipped: each text's window extent lies inside the figure (after the
  layout engine ran -- what matplotlib can tell);
* no text inside an axes overlaps that axes' title.
"""

from __future__ import annotations

__all__ = ["figure_problems"]


def _texts(fig) -> list:
    """The texts matplotlib draws: figure texts, and per axes its texts, titles, labels, the
    legend and the tick labels of the ticks inside the view."""
    out = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else [])
    for ax in fig.axes:
        out += list(ax.texts) + [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        leg = ax.get_legend()
        if leg is not None:
            out += list(leg.get_texts()) + [leg.get_title()]
        for axis in (ax.xaxis, ax.yaxis):
            out += [t.label1 for t in axis._update_ticks()] + [t.label2 for t in axis._update_ticks()]
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def _numeric(text: str) -> bool:
    try:
        float(text.replace("\u2212", "-"))
        return True
    except ValueError:
        return False


def figure_problems(fig) -> list[str]:
    """One line per problem of ``fig`` (empty: readable)."""
    fig.draw_without_rendering()  # runs the layout engine; extents are final
    renderer = fig._get_renderer()
    box = fig.bbox
    out: list[str] = []
    has_suptitle = fig._suptitle is not None and fig._suptitle.get_text().strip()
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        drawn = ax.lines or ax.collections or ax.patches or ax.images
        if not drawn:
            out.append(f"axes {i}: draws nothing")
            continue
        if not ax.get_xlabel().strip():
            out.append(f"axes {i}: no x label")
        ticks = [t for t in ax.get_yticklabels() if t.get_text().strip() and not _numeric(t.get_text())]
        if not ax.get_ylabel().strip() and not ticks:
            out.append(f"axes {i}: no y label")
        if not ax.get_title().strip() and not has_suptitle:
            out.append(f"axes {i}: no title")
        title = ax.title
        if title.get_text().strip():
            tb = title.get_window_extent(renderer)
            for t in ax.texts:
                if t.get_visible() and t.get_text().strip() and t.get_window_extent(renderer).overlaps(tb):
                    out.append(f"axes {i}: text {t.get_text()!r} overlaps the title")
    for t in _texts(fig):
        e = t.get_window_extent(renderer)
        if e.width == 0 and e.height == 0:
            continue
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            out.append(f"text {t.get_text()[:40]!r} is clipped by the figure edge")
    return out
