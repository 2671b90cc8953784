"""Reports: the numbers as JSON, and the same tables with PNG plots as Markdown and HTML.

    write_report(out, "luoxia eval text", data, tables=[Table(...)], figures=[Figure(...)])

writes out/results.json, out/report.md, out/report.html and the figures' PNGs (matplotlib, Agg
backend: no display needed). Numbers are rounded for the tables only; the JSON keeps them whole.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

from luoxia.core.errors import UserFileError

REPORT_VERSION = 1


@dataclasses.dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list]
    note: str = ""


@dataclasses.dataclass
class Figure:
    filename: str  # a .png name inside the report folder
    caption: str


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1000 or abs(value) < 1e-3 and value else f"{value:.{digits}f}"
    return str(value)


def _clean(value):
    """JSON-safe: nan and inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def histogram(path: Path, values: Sequence[float], title: str, xlabel: str, log: bool = False) -> None:
    plt = _pyplot()
    finite = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if finite:
        if log:
            ax.set_xscale("log")
            lo, hi = min(finite), max(finite)
            bins = [lo * (hi / lo) ** (i / 20) for i in range(21)] if hi > lo else 10
        else:
            bins = 20
        ax.hist(finite, bins=bins, color="#c8553d", edgecolor="white")
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bars(path: Path, labels: Sequence[str], series: dict[str, Sequence[float]], title: str, ylabel: str = "",
         log: bool = False) -> None:
    """Grouped bars: one group per label, one bar per series."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(labels) * max(1, len(series)) + 2), 3.6))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        ys = [v if v is not None and math.isfinite(v) else 0 for v in values]
        ax.bar([i + k * width for i in range(len(labels))], ys, width, label=name)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels, rotation=30, ha="right")
    if log:
        ax.set_yscale("log")
    ax.set(title=title, ylabel=ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def markdown(title: str, tables: Sequence[Table], figures: Sequence[Figure], intro: str = "") -> str:
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    for t in tables:
        lines += [f"## {t.title}", ""]
        if t.note:
            lines += [t.note, ""]
        lines += ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
        lines += ["| " + " | ".join(fmt(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
                  for row in t.rows]
        lines.append("")
    for f in figures:
        lines += [f"![{f.caption}]({f.filename})", "", f"*{f.caption}*", ""]
    return "\n".join(lines)


def html_page(title: str, tables: Sequence[Table], figures: Sequence[Figure], intro: str = "") -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
             "figure{display:inline-block;margin:0.5em}</style></head><body>", f"<h1>{e(title)}</h1>"]
    if intro:
        parts.append(f"<p>{e(intro)}</p>")
    for t in tables:
        parts.append(f"<h2>{e(t.title)}</h2>" + (f"<p>{e(t.note)}</p>" if t.note else ""))
        parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in t.columns) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(fmt(c))}</td>" for c in row) + "</tr>" for row in t.rows]
        parts.append("</table>")
    parts += [f"<figure><img src='{e(f.filename)}' alt='{e(f.caption)}'><figcaption>{e(f.caption)}</figcaption>"
              "</figure>" for f in figures]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(directory: str | Path, title: str, data: dict, tables: Sequence[Table],
                 figures: Sequence[Figure] = (), intro: str = "") -> dict[str, Path]:
    """Write results.json, report.md and report.html into `directory` (the PNGs must be there already)."""
    directory = Path(directory)
    paths = {"json": directory / "results.json", "markdown": directory / "report.md",
             "html": directory / "report.html"}
    try:
        paths["json"].write_text(json.dumps(_clean({"version": REPORT_VERSION, **data}), ensure_ascii=False,
                                            indent=2) + "\n", encoding="utf-8")
        paths["markdown"].write_text(markdown(title, tables, figures, intro), encoding="utf-8")
        paths["html"].write_text(html_page(title, tables, figures, intro), encoding="utf-8")
    except OSError as e:
        raise UserFileError(f"cannot write the report into {directory}: {e.strerror}; choose another -o") from None
    return paths


def report_dir(directory: str | Path) -> Path:
    """Create the report folder (and its parents); a file in the way is a user error."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserFileError(f"-o {directory} is a file; give a folder for the report")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserFileError(f"cannot create {directory}: {e.strerror}; choose another -o") from None
    return directory
