"""A tile-grid map of Thailand's 77 provinces, drawn as inline SVG.

One square tile per province at a (column, row) of a grid whose outline
approximates the country (north at the top, the northeast to the right, the
southern peninsula running down to Narathiwat). The grid is original work of
this project, shipped in ``risk/scoring/reference/thai_province_tiles.csv``
(see the README there); it is read once through ``importlib.resources``.

A tile map gives every province the same area, so a small province with a high
rate is as visible as a large one: the reason it suits a rate per province.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Mapping
from importlib.resources import files
from typing import NamedTuple

from risk.scoring.charts import NO_DATA, Bins, colour_of, esc, ink_for, percent, text_width_px

__all__ = ["Tile", "province_tiles", "tilemap_svg"]

_TILES_RESOURCE = ("risk.scoring.reference", "thai_province_tiles.csv")
# The everyday short forms of the two longest names, for the tile label only;
# the tooltip keeps the full name.
_SHORT_TH = {"10": "กรุงเทพฯ", "14": "อยุธยา"}


class Tile(NamedTuple):
    """One province's place on the grid; ``col`` grows eastwards, ``row`` southwards."""

    code: str
    name_en: str
    name_th: str
    col: int
    row: int


@functools.cache
def province_tiles() -> tuple[Tile, ...]:
    """All 77 tiles, in the order of the packaged CSV (by province code)."""
    package, name = _TILES_RESOURCE
    with (files(package) / name).open("r", encoding="utf-8", newline="") as handle:
        return tuple(
            Tile(row["code"], row["name_en"], row["name_th"], int(row["col"]), int(row["row"]))
            for row in csv.DictReader(handle)
        )


def tilemap_svg(
    rates: Mapping[str, float],
    bins: Bins,
    *,
    tile_px: int = 58,
    gap_px: int = 3,
    what: str = "อัตราเฝ้าระวัง / flagged rate",
) -> str:
    """The map as an ``<svg>`` element: one ``<rect class="tile">`` per province.

    Parameters
    ----------
    rates : mapping of province code to share in [0, 1]
        Provinces absent (or NaN) are drawn grey as "no data".
    bins : Bins
        Colour classes, shared with the legend.
    what : str
        Name of the value, written in each tile's tooltip.
    """
    tiles = province_tiles()
    step = tile_px + gap_px
    width = (max(t.col for t in tiles) + 1) * step
    height = (max(t.row for t in tiles) + 1) * step
    parts = []
    for tile in tiles:
        rate = rates.get(tile.code, math.nan)
        fill = colour_of(rate, bins)
        ink = ink_for(fill)
        x, y = tile.col * step, tile.row * step
        shown = percent(rate) if fill != NO_DATA else "–"
        tooltip = f"{tile.name_th} / {tile.name_en} ({tile.code}): {what} {shown}"
        parts.append(
            f'<g><title>{esc(tooltip)}</title>'
            f'<rect class="tile" data-code="{esc(tile.code)}" x="{x}" y="{y}" width="{tile_px}" '
            f'height="{tile_px}" rx="4" fill="{fill}" stroke="#fff" stroke-width="1"/>'
            f"{_label(_SHORT_TH.get(tile.code, tile.name_th), x, y, tile_px, ink)}"
            f'<text x="{x + tile_px / 2}" y="{y + tile_px * 0.72:.1f}" font-size="12" font-weight="600" '
            f'text-anchor="middle" fill="{ink}">{esc(shown)}</text></g>'
        )
    return (
        f'<svg class="tilemap" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{esc(what)}">{"".join(parts)}</svg>'
    )


def _label(name: str, x: float, y: float, tile_px: int, ink: str) -> str:
    """The Thai name across the top of a tile, squeezed to the tile's width when too long."""
    font_px = 10.5
    room = tile_px - 6
    fit = f' textLength="{room}" lengthAdjust="spacingAndGlyphs"' if text_width_px(name, font_px) > room else ""
    return (
        f'<text x="{x + tile_px / 2}" y="{y + tile_px * 0.34:.1f}" font-size="{font_px}" '
        f'text-anchor="middle" fill="{ink}"{fit}>{esc(name)}</text>'
    )
