"""Render an rlsim HTML report (``--report``) to a PNG, as the README's screenshot is made.

WeasyPrint lays the page out on one tall page (the long summary table and the resolved
scenario hidden so the report, figures, assumptions and warnings fit one image) and pypdfium2
rasterises it; the blank margin below is cropped.  A documentation tool, not a dependency of
rlsim: ``pip install weasyprint pypdfium2`` (no browser needed).

    python docs/render_report.py REPORT.html OUT.png [--width-px 1150] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import io

FOLD = "section:nth-of-type(2), section:nth-of-type(6) { display: none }"


def render(html: str, out: str, width_px: int = 1150, scale: float = 1.0) -> None:
    import pypdfium2 as pdfium
    import weasyprint
    from PIL import ImageChops

    page = f"@page {{ size: {width_px}px 30000px; margin: 16px }} {FOLD}"
    pdf_bytes = weasyprint.HTML(html).write_pdf(stylesheets=[weasyprint.CSS(string=page)])
    image = pdfium.PdfDocument(io.BytesIO(pdf_bytes))[0].render(scale=scale).to_pil().convert("RGB")
    bbox = ImageChops.invert(image).getbbox()  # the drawn area: crop the blank page below it
    if bbox:
        image = image.crop((0, 0, image.width, min(image.height, bbox[3] + 24)))
    image.save(out, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html")
    ap.add_argument("out")
    ap.add_argument("--width-px", type=int, default=1150)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    render(args.html, args.out, args.width_px, args.scale)


if __name__ == "__main__":
    main()
