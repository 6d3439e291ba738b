"""``report.html``: a run folder's results as one static page to look through in a browser, offline.

One row per photograph of the folder's summary files (the summary, or the parts of a sharded run: the same rows
``--merge`` writes), with its thumbnail (a link to the full-size overlay where one was written), its name (a link
to the probability map where one was written), every column of the summary (quality and reliability first), and
the photographs flagged for a check first and highlighted; above it, histograms of the reliability and the
measurements. A click on a column header sorts by it (again: the other way). Nothing is fetched: the style and
the script are in the page, the thumbnails are the ``<id>_thumbnail.jpg`` files beside it, loaded as they scroll
into view. Rewritten whole (atomically) from the
summary files after they are written (during a run at most MAX_SHARE of its time, see ``Refresher``), so it lists
every row they hold.
"""

import html
import json
import math
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

from lib.atomic import write_text
from lib.files import file_id
from lib.measurements import COLUMNS as MEASUREMENTS
from lib.quality import is_flagged
from lib.run_folder import REPORT, SETTINGS, merged_rows, output_names, output_path, read_settings, thumbnail_path

HIDDEN = ("image",)  # shown as the photograph's name (the full path as its tooltip) instead
FIRST = ("quality", "reliability")  # beside the photograph's name: what tells which ones to look at
HISTOGRAMS = ("reliability", *MEASUREMENTS)  # the columns drawn as histograms above the table
BINS = 20
TEXT = ("quality", "warning")  # columns of words, left-aligned; the others hold numbers
NEEDS_ESCAPING = re.compile(r"[&<>\"']")
THUMBNAIL_ENDING = thumbnail_path(Path(), "").name  # what follows a photograph's id in its thumbnail's name
PROBABILITY_ENDING = output_path(Path(), "", "probability").name
MAX_SHARE = 0.05  # during a run the report takes at most this share of the time (10,000 rows: 0.5-1.3 s)

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table.results { border-collapse: collapse; }
.results th, .results td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: right; }
.results th { position: sticky; top: 0; background: #f4f4f4; cursor: pointer; user-select: none; }
.results th[aria-sort="ascending"]::after { content: " \\25B2"; }
.results th[aria-sort="descending"]::after { content: " \\25BC"; }
.results td.text { text-align: left; white-space: nowrap; }
.results tr.check { background: #fff0e0; }
.results tr.check td.quality { color: #b00; font-weight: bold; }
.results img { display: block; max-width: 120px; max-height: 120px; }
.settings td { padding: 1px 8px 1px 0; }
.histograms { display: flex; flex-wrap: wrap; gap: 8px 20px; margin: 1em 0; }
.histograms figure { margin: 0; font-size: 12px; }
.histograms rect { fill: #4a7fb5; }
"""

SCRIPT = """
(function () {
  function key(row, index) {
    var cell = row.cells[index];
    var text = cell.getAttribute("data-value");
    if (text === null) { text = cell.textContent; }
    var number = Number(text);
    return text.trim() !== "" && isFinite(number) ? number : text;
  }
  function compare(a, b) {
    var numbers = typeof a === "number", other = typeof b === "number";
    if (numbers && other) { return a - b; }
    if (numbers !== other) { return numbers ? -1 : 1; }
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  function sortBy(header) {
    var table = header.closest("table"), body = table.tBodies[0], index = header.cellIndex;
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var order = compare(key(a, index), key(b, index));
      return ascending ? order : -order;
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);
  }
  document.querySelectorAll("th[data-sort]").forEach(function (header) {
    header.addEventListener("click", function () { sortBy(header); });
  });
})();
"""


def write_report(out_dir: Path) -> Path:
    """Write ``out_dir``/report.html from the summary files there; returns its path."""
    rows, columns, _ = merged_rows(out_dir)
    rows.sort(key=lambda row: not is_flagged(row))  # stable: flagged first, each group by image
    first = [column for column in FIRST if column in columns]
    shown = first + [column for column in columns if column not in (*HIDDEN, *first)]
    page = render(out_dir, rows, shown, read_settings(out_dir))
    write_text(out_dir / REPORT, page)
    return out_dir / REPORT


class Refresher:
    """Rewrites the report as a run goes, called after each write of the summary: skipped while the last rewrite's
    time is more than MAX_SHARE of the time since it (a report of many rows would hold up the network); ``finish``
    writes it if a call was skipped since."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.cost, self.written_at, self.pending = out_dir, 0.0, -math.inf, False

    def __call__(self) -> None:
        start = time.monotonic()
        self.pending = start - self.written_at < self.cost / MAX_SHARE
        if not self.pending:
            write_report(self.out_dir)
            self.cost, self.written_at = time.monotonic() - start, start

    def finish(self) -> None:
        if self.pending:
            write_report(self.out_dir)
            self.pending = False


def render(out_dir: Path, rows: list[dict], columns: list[str], settings: dict | None) -> str:
    flagged = sum(map(is_flagged, rows))
    title = f"Vessel segmentation: {out_dir.resolve().name}"
    header = "".join(f"<th data-sort>{html.escape(column)}</th>" for column in ["image", *columns])
    files = set(os.listdir(out_dir))
    body = "\n".join(render_row(row, columns, files) for row in rows)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p id="counts">{len(rows)} photographs; {flagged} flagged for a check (column <code>quality</code>; the reliability
estimate and its threshold: docs/quality.md). Click a column header to sort by it.</p>
{render_settings(settings)}
{render_histograms(rows, columns)}
<table class="results" id="results">
<thead><tr><th>overlay</th>{header}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<script>{SCRIPT}</script>
</body>
</html>
"""


def escape(text: str) -> str:
    """``html.escape``, skipped for the many cells (numbers) that need none."""
    return html.escape(text) if NEEDS_ESCAPING.search(text) else text


def render_row(row: dict, columns: list[str], files: set[str]) -> str:
    name = file_id(Path(row["image"]))
    shown = escape(name)
    if (probability := name + PROBABILITY_ENDING) in files:
        shown = f'<a href="{quote(probability)}">{shown}</a>'
    cells = [render_thumbnail(name, files), f'<td class="text" title="{escape(row["image"])}">{shown}</td>']
    for column in columns:
        value = escape(row.get(column) or "")
        cells.append(f'<td class="text {column}">{value}</td>' if column in TEXT else f"<td>{value}</td>")
    flag = ' class="check"' if is_flagged(row) else ""
    return f"<tr{flag}>{''.join(cells)}</tr>"


def render_thumbnail(name: str, files: set[str]) -> str:
    """The thumbnail's cell: ``files`` are the names in the folder (one listing, not a look-up per row)."""
    thumbnail = name + THUMBNAIL_ENDING
    if thumbnail not in files:
        return '<td class="text">(none)</td>'
    image = f'<img src="{quote(thumbnail)}" alt="{escape(name)}" loading="lazy">'
    overlay = next((written for written in output_names(name, "overlay") if written in files), None)
    if overlay:
        image = f'<a href="{quote(overlay)}">{image}</a>'
    return f"<td>{image}</td>"


def number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def render_histograms(rows: list[dict], columns: list[str]) -> str:
    """A small SVG histogram per column of HISTOGRAMS, over the rows that have a finite value in it."""
    figures = []
    for column in (name for name in HISTOGRAMS if name in columns):
        values = np.array([number(row.get(column)) for row in rows])
        values = values[np.isfinite(values)]
        if values.size:
            figures.append(histogram(column, values))
    return f'<div class="histograms">{"".join(figures)}</div>' if figures else ""


def histogram(column: str, values: np.ndarray, width: int = 180, height: int = 50) -> str:
    counts, edges = np.histogram(values, bins=BINS)
    step, top = width / BINS, counts.max()
    bars = "".join(
        f'<rect x="{index * step:.1f}" y="{height * (1 - count / top):.1f}" width="{step - 1:.1f}" '
        f'height="{height * count / top:.1f}"><title>{edges[index]:.4g} to {edges[index + 1]:.4g}: {count}</title>'
        "</rect>"
        for index, count in enumerate(counts)
        if count
    )
    return (
        f'<figure><svg width="{width}" height="{height}" role="img" aria-label="histogram of {column}">{bars}</svg>'
        f"<figcaption>{column}: {values.min():.4g} to {values.max():.4g}</figcaption></figure>"
    )


def render_settings(settings: dict | None) -> str:
    if not settings:
        return f"<p>No readable {SETTINGS}.</p>"
    shown = {key: value if isinstance(value, str) else json.dumps(value) for key, value in settings.items()}
    lines = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>" for key, value in shown.items()
    )
    return f'<details><summary>Settings ({SETTINGS})</summary><table class="settings">{lines}</table></details>'
