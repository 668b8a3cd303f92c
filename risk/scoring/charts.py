"""Small inline-SVG charts for the term report: colour bins, a legend, ranked and stacked bars.

Every function returns SVG markup as a ``str`` that is safe to put into HTML as
is: all text that came from data is escaped here. Sizes are CSS pixels. No
JavaScript and no external resources, so the report opens offline.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from html import escape
from typing import NamedTuple

__all__ = [
    "CLASS_COLOURS",
    "SEQUENTIAL",
    "Bins",
    "Segment",
    "colour_of",
    "esc",
    "ink_for",
    "legend_svg",
    "nice_bins",
    "percent",
    "ranked_bars_svg",
    "stacked_bars_svg",
    "text_width_px",
]

# Five-step sequential ramp (light to dark orange-red), readable in greyscale and
# for the common colour-vision deficiencies because lightness rises monotonically.
SEQUENTIAL: tuple[str, ...] = ("#fee8c8", "#fdbb84", "#fc8d59", "#d7301f", "#7f0000")
NO_DATA = "#e4e4e4"
# normal, at_risk, problem: the three classes of the policy.
CLASS_COLOURS: tuple[str, ...] = ("#9ecae1", "#fdae6b", "#d7301f")
TEXT = "#222"


def esc(text: object) -> str:
    """Escape any value for use as SVG/HTML text or an attribute value."""
    return escape(str(text), quote=True)


def ink_for(fill: str) -> str:
    """Text colour readable on a ``#rrggbb`` fill: white on dark fills, near-black on light ones."""
    r, g, b = (int(fill[i : i + 2], 16) / 255 for i in (1, 3, 5))
    # Rec. 709 luma: perceived lightness, good enough to choose between two inks.
    return "#fff" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else TEXT


def percent(value: float, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage, ``0.1234 -> "12.3%"``; NaN becomes ``"–"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}%"


def text_width_px(text: str, font_px: float) -> float:
    """Rough width of a line of text: combining marks (Thai vowels above/below, tones) take none."""
    spacing = sum(1 for ch in text if not unicodedata.combining(ch) and unicodedata.category(ch) != "Mn")
    return spacing * font_px * 0.58


class Bins(NamedTuple):
    """Equal-width colour classes: ``edges`` has one more entry than ``colours``."""

    edges: tuple[float, ...]
    colours: tuple[str, ...]


def nice_bins(values: Sequence[float], colours: Sequence[str] = SEQUENTIAL) -> Bins:
    """Equal-width bins over the range of ``values`` (shares in [0, 1]), edges on whole percents.

    The width is the smallest of 0.5, 1, 2, 3, 4, 5, 10 or 20 percentage points
    that covers the range with the lower edge rounded down to a multiple of it,
    so that the legend reads in round numbers and every colour is used. NaNs
    are ignored; with no finite value the bins span 0–10%.
    """
    finite = [v for v in values if v is not None and not math.isnan(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.1)
    n = len(colours)
    for step_pp in (0.5, 1, 2, 3, 4, 5, 10, 20):
        step = step_pp / 100
        start = math.floor(low / step + 1e-9) * step
        if start + n * step >= high - 1e-12:
            break
    edges = tuple(round(start + i * step, 6) for i in range(n + 1))
    return Bins(edges=edges, colours=tuple(colours))


def colour_of(value: float | None, bins: Bins) -> str:
    """Fill colour of a value: its bin's colour, the last bin for the top edge, grey for missing."""
    if value is None or math.isnan(value):
        return NO_DATA
    for upper, colour in zip(bins.edges[1:], bins.colours, strict=True):
        if value < upper:
            return colour
    return bins.colours[-1]


def legend_svg(bins: Bins, title: str, *, width: int = 340) -> str:
    """A stepped legend: one swatch per bin labelled with its lower edge, plus a no-data swatch."""
    n = len(bins.colours)
    digits = 0 if all(abs(100 * e - round(100 * e)) < 1e-6 for e in bins.edges) else 1
    swatch = (width - 20) / (n + 1)
    parts = [f'<text x="0" y="12" font-size="12" fill="{TEXT}">{esc(title)}</text>']
    for i, colour in enumerate(bins.colours):
        x = i * swatch
        parts.append(f'<rect x="{x:.1f}" y="18" width="{swatch:.1f}" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x:.1f}" y="46" font-size="11" fill="{TEXT}">{percent(bins.edges[i], digits)}</text>')
    x_end = n * swatch
    parts.append(
        f'<text x="{x_end:.1f}" y="46" font-size="11" fill="{TEXT}" text-anchor="end">'
        f"{percent(bins.edges[-1], digits)}</text>"
    )
    x_na = x_end + 16
    parts.append(f'<rect x="{x_na:.1f}" y="18" width="{swatch - 4:.1f}" height="14" fill="{NO_DATA}"/>')
    parts.append(f'<text x="{x_na:.1f}" y="46" font-size="11" fill="{TEXT}">ไม่มีข้อมูล</text>')
    return (
        f'<svg class="legend" width="{width + 40}" height="52" viewBox="0 0 {width + 40} 52" '
        f'role="img" aria-label="{esc(title)}">{"".join(parts)}</svg>'
    )


def ranked_bars_svg(
    items: Sequence[tuple[str, str, float]],
    bins: Bins,
    *,
    width: int = 520,
    row_px: int = 26,
    notes: Sequence[str] | None = None,
) -> str:
    """Horizontal bars of shares, longest first as given.

    Parameters
    ----------
    items : sequence of (label, tooltip, share)
        One bar each, drawn in the order given; ``share`` in [0, 1].
    bins : Bins
        Colour classes (the map's, so a bar and its tile match).
    notes : sequence of str, optional
        Text written after each bar (e.g. "45.6% (47 / 103)"); default the share as a percentage.
    """
    if not items:
        return ""
    texts = list(notes) if notes is not None else [percent(share) for _, _, share in items]
    top = max(share for _, _, share in items) or 1.0
    label_px = round(min(max(text_width_px(label, 13) for label, _, _ in items) + 14, width / 2))
    bar_room = width - label_px - max(60, max(text_width_px(t, 12) for t in texts) + 12)
    parts = []
    for i, ((label, tooltip, share), note) in enumerate(zip(items, texts, strict=True)):
        y = i * row_px
        length = max(bar_room * share / top, 1.0)
        parts.append(
            f'<g><title>{esc(tooltip)}</title>'
            f'<text x="{label_px - 8}" y="{y + row_px * 0.65:.1f}" font-size="13" text-anchor="end" '
            f'fill="{TEXT}">{esc(label)}</text>'
            f'<rect x="{label_px}" y="{y + 4}" width="{length:.1f}" height="{row_px - 8}" '
            f'fill="{colour_of(share, bins)}" stroke="#888" stroke-width="0.5"/>'
            f'<text x="{label_px + length + 6:.1f}" y="{y + row_px * 0.65:.1f}" font-size="12" '
            f'fill="{TEXT}">{esc(note)}</text></g>'
        )
    height = len(items) * row_px
    return (
        f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img">{"".join(parts)}</svg>'
    )


class Segment(NamedTuple):
    """One series of a stacked bar chart: its legend label and colour."""

    label: str
    colour: str


def stacked_bars_svg(
    rows: Sequence[tuple[str, Sequence[float]]],
    segments: Sequence[Segment],
    *,
    width: int = 760,
    row_px: int = 24,
    label_px: int = 48,
    note: Callable[[Sequence[float]], str] | None = None,
) -> str:
    """Horizontal 100% stacked bars: each row's counts as shares of its total.

    Parameters
    ----------
    rows : sequence of (label, counts)
        ``counts`` has one non-negative number per segment; a row of zeros is drawn empty.
    segments : sequence of Segment
        Legend label and colour of each count, in the same order.
    note : callable, optional
        Text written right of a bar from its counts (e.g. the total).
    """
    legend_h = 24
    note_px = 150 if note else 0
    bar_room = width - label_px - note_px - 8
    parts = []
    x = 0.0
    for seg in segments:
        parts.append(f'<rect x="{label_px + x:.1f}" y="4" width="12" height="12" fill="{seg.colour}"/>')
        parts.append(f'<text x="{label_px + x + 16:.1f}" y="14" font-size="12" fill="{TEXT}">{esc(seg.label)}</text>')
        x += 28 + text_width_px(seg.label, 12)
    for i, (label, counts) in enumerate(rows):
        y = legend_h + i * row_px
        total = float(sum(counts))
        parts.append(
            f'<text x="{label_px - 6}" y="{y + row_px * 0.68:.1f}" font-size="13" text-anchor="end" '
            f'fill="{TEXT}">{esc(label)}</text>'
        )
        x = float(label_px)
        for count, seg in zip(counts, segments, strict=True):
            share = count / total if total > 0 else 0.0
            w = bar_room * share
            if w <= 0:
                continue
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_px - 6}" fill="{seg.colour}">'
                f"<title>{esc(label)} · {esc(seg.label)}: {count:,.0f} ({percent(share)})</title></rect>"
            )
            if w > 44:
                parts.append(
                    f'<text x="{x + w / 2:.1f}" y="{y + row_px * 0.68:.1f}" font-size="11" '
                    f'text-anchor="middle" fill="{ink_for(seg.colour)}">{percent(share)}</text>'
                )
            x += w
        if note:
            parts.append(
                f'<text x="{label_px + bar_room + 8}" y="{y + row_px * 0.68:.1f}" font-size="12" '
                f'fill="{TEXT}">{esc(note(counts))}</text>'
            )
    height = legend_h + len(rows) * row_px
    return (
        f'<svg class="stacked" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img">{"".join(parts)}</svg>'
    )
