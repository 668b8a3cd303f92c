"""Schools: where they are, what they are, and the hidden school and district effects.

Schools are placed in provinces weighted towards where poor students live; each
gets an area (urban/rural), a type (primary K1–P6, extended K1–M3, secondary
M1–M6), a size class that follows area and type, an affiliation, a Thai name, a
10-digit code and coordinates. Students are drawn to schools in proportion to
the size class, by the band of grades the school teaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.data.geography import PROVINCE_CODES, PROVINCES, REGIONS
from risk.data.synth.config import SynthConfig

__all__ = ["BANDS", "SIZES", "Schools", "build_schools", "pick_schools"]

SIZES = ("small", "medium", "large", "extra_large")
AREAS = ("urban", "rural")
AFFILIATIONS = ("obec", "local", "bpp", "private", "other")
KINDS = ("primary", "extended", "secondary")
# Grade bands and the school kinds that teach them: K1–P6, M1–M3, M4–M6.
BANDS = {0: (0, 1), 1: (1, 2), 2: (2,)}

# Rough bounding boxes (lat_min, lat_max, lon_min, lon_max) of the regions, used
# to place provinces; coordinates are illustrative, not surveyed.
_REGION_BOX = {
    "north": (17.3, 20.2, 98.0, 101.2), "northeast": (14.4, 18.2, 101.5, 105.4),
    "central": (13.6, 16.9, 99.6, 101.1), "east": (12.3, 14.2, 101.0, 102.8),
    "west": (11.5, 17.0, 98.6, 99.8), "south": (5.9, 10.6, 98.4, 101.8),
}  # fmt: skip
_PLACE_FIRST = ("หนอง", "โนน", "ดอน", "ห้วย", "นา", "โคก", "ป่า", "ทุ่ง", "บ่อ", "สระ", "วัง", "แม่",
                "ท่า", "บึง", "กุด", "โพธิ์", "หัว", "ดง", "คลอง", "เขา", "บาง", "ควน")  # fmt: skip
_PLACE_SECOND = ("บัว", "แดง", "สูง", "ใหญ่", "คำ", "ทอง", "ไผ่", "ยาง", "ม่วง", "ขาม", "จาน", "ตะเคียน",
                 "เหล็ก", "งาม", "สะแก", "เจริญ", "สว่าง", "ศรี", "หลวง", "น้อย", "กลาง", "ใต้", "เหนือ",
                 "ทราย", "หิน", "แก้ว")  # fmt: skip


@dataclass
class Schools:
    """One entry per school; arrays of shape (n_schools,)."""

    school_id: np.ndarray      # U10
    name: np.ndarray           # object (Thai text)
    province: np.ndarray       # int index into PROVINCE_CODES
    district_code: np.ndarray  # U4
    district: np.ndarray       # int, global district index
    region: np.ndarray         # int index into REGIONS
    size: np.ndarray           # int index into SIZES
    rural: np.ndarray          # bool
    affiliation: np.ndarray    # int index into AFFILIATIONS
    kind: np.ndarray           # int index into KINDS
    latitude: np.ndarray       # float, NaN when not recorded
    longitude: np.ndarray
    weight: np.ndarray         # relative number of sampled students
    effect: np.ndarray         # school effect on the dropout log-odds
    district_effect: np.ndarray
    area_poverty: np.ndarray   # mean latent poverty of the school's students
    attendance_effect: np.ndarray
    sections: np.ndarray       # classrooms per grade

    @property
    def n(self) -> int:
        return self.school_id.shape[0]


def _choice(rng: np.random.Generator, weights: dict[str, float], keys: tuple[str, ...], size: int) -> np.ndarray:
    p = np.array([weights.get(k, 0.0) for k in keys], dtype=float)
    return rng.choice(len(keys), size=size, p=p / p.sum())


def build_schools(n: int, rng: np.random.Generator, cfg: SynthConfig) -> Schools:
    """``n`` schools with their hidden effects, deterministic for a given generator state."""
    sc = cfg.schools
    regions = np.array([REGIONS.index(PROVINCES[c][1]) for c in PROVINCE_CODES])
    per_region = np.bincount(regions, minlength=len(REGIONS))
    pw = np.array([sc.region_weight[REGIONS[r]] / per_region[r] for r in regions])
    pw *= np.where(np.isin(PROVINCE_CODES, sc.deep_south_provinces), sc.deep_south_boost, 1.0)
    province = rng.choice(len(PROVINCE_CODES), size=n, p=pw / pw.sum())
    region = regions[province]

    lo, hi = sc.districts_per_province
    n_districts = rng.integers(lo, hi + 1, size=len(PROVINCE_CODES))
    district_local = (rng.random(n) * n_districts[province]).astype(np.int64)
    district_offset = np.concatenate([[0], np.cumsum(n_districts)[:-1]])
    district = district_offset[province] + district_local
    district_effect_all = rng.normal(0.0, sc.district_effect_sd, size=int(n_districts.sum()))
    codes = np.array(PROVINCE_CODES)
    district_code = np.char.add(codes[province], np.char.zfill((district_local + 1).astype(str), 2))

    rural = rng.random(n) >= sc.urban_share
    kind = _choice(rng, sc.type_share, KINDS, n)
    for k in range(len(KINDS)):  # every band of grades needs at least one school
        if not (kind == k).any():
            kind[k % n] = k
    size = np.where(rural, _choice(rng, sc.size_given_area["rural"], SIZES, n),
                    _choice(rng, sc.size_given_area["urban"], SIZES, n))
    size = np.where(kind == 2, np.minimum(size + sc.secondary_size_shift, len(SIZES) - 1), size)
    affiliation = _choice(rng, sc.affiliation, AFFILIATIONS, n)
    bpp_ok = rural & (kind == 0) & np.isin(region, [REGIONS.index(r) for r in sc.bpp_regions])
    affiliation = np.where((affiliation == 2) & ~bpp_ok, 0, affiliation)

    school_id = _school_codes(codes[province], district_code, district)
    name = _names(rng, kind, affiliation, cfg)
    lat, lon = _coordinates(rng, province, region, sc.missing_coordinates)
    size_weight = np.array([sc.size_weight[s] for s in SIZES])
    area_poverty = (np.array([sc.region_poverty[r] for r in REGIONS])[region] + sc.rural_poverty * rural
                    + rng.normal(0.0, sc.area_poverty_sd, n))
    sections = np.clip(1 + size + rng.integers(0, 2, n), cfg.population.classrooms[0], cfg.population.classrooms[1])
    return Schools(
        school_id=school_id, name=name, province=province, district_code=district_code, district=district,
        region=region, size=size, rural=rural, affiliation=affiliation, kind=kind, latitude=lat, longitude=lon,
        weight=size_weight[size], effect=rng.normal(0.0, sc.effect_sd, n),
        district_effect=district_effect_all[district], area_poverty=area_poverty,
        attendance_effect=rng.normal(0.0, sc.attendance_effect_sd, n), sections=sections,
    )


def _school_codes(province: np.ndarray, district_code: np.ndarray, district: np.ndarray) -> np.ndarray:
    """``10`` + district code + a 4-digit running number within the district: 10 digits, unique."""
    order = np.argsort(district, kind="stable")
    rank = np.empty_like(order)
    sorted_d = district[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_d)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(sorted_d)]))
    rank[order] = np.arange(len(order)) - run_start + 1
    return np.char.add(np.char.add("10", district_code), np.char.zfill(rank.astype(str), 4))


def _names(rng: np.random.Generator, kind: np.ndarray, affiliation: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    n = kind.shape[0]
    place = np.char.add(np.array(_PLACE_FIRST)[rng.integers(0, len(_PLACE_FIRST), n)],
                        np.array(_PLACE_SECOND)[rng.integers(0, len(_PLACE_SECOND), n)])
    label = np.array(KINDS)[kind].astype(object)
    label[affiliation == 3] = "private"
    prefix = np.array([cfg.schools.name_prefix[k] for k in label], dtype=object)
    suffix = np.array([cfg.schools.name_suffix[k] for k in label], dtype=object)
    return prefix + place.astype(object) + suffix


def _coordinates(rng: np.random.Generator, province: np.ndarray, region: np.ndarray,
                 missing: float) -> tuple[np.ndarray, np.ndarray]:
    box = np.array([_REGION_BOX[r] for r in REGIONS])
    # A fixed centre per province (from its own generator, independent of the school count).
    prng = np.random.default_rng(20240516)
    pr = np.array([REGIONS.index(PROVINCES[c][1]) for c in PROVINCE_CODES])
    centre_lat = box[pr, 0] + prng.random(len(pr)) * (box[pr, 1] - box[pr, 0])
    centre_lon = box[pr, 2] + prng.random(len(pr)) * (box[pr, 3] - box[pr, 2])
    lat = np.clip(centre_lat[province] + rng.normal(0, 0.25, province.shape[0]), 5.7, 20.4).round(5)
    lon = np.clip(centre_lon[province] + rng.normal(0, 0.25, province.shape[0]), 97.4, 105.6).round(5)
    gone = rng.random(province.shape[0]) < missing
    lat[gone] = np.nan
    lon[gone] = np.nan
    return lat, lon


def pick_schools(schools: Schools, band: np.ndarray, province: np.ndarray | None,
                 rng: np.random.Generator) -> np.ndarray:
    """A school for each student that teaches the student's grade band, drawn ∝ school weight.

    Parameters
    ----------
    band : int array (n,), 0 = K1–P6, 1 = M1–M3, 2 = M4–M6
    province : int array (n,) or None; when given, a school in that province is
        preferred, falling back to the whole country when the province has none.
    """
    out = np.empty(band.shape[0], dtype=np.int64)
    u = rng.random(band.shape[0])
    for b, kinds in BANDS.items():
        rows = np.flatnonzero(band == b)
        if rows.size == 0:
            continue
        eligible = np.flatnonzero(np.isin(schools.kind, kinds))
        w = schools.weight[eligible]
        if province is None:
            cum = np.cumsum(w)
            out[rows] = eligible[np.minimum(np.searchsorted(cum, u[rows] * cum[-1], side="right"), len(cum) - 1)]
            continue
        # Schools of the band sorted by province; cumulative weight over that order.
        order = np.argsort(schools.province[eligible], kind="stable")
        sch = eligible[order]
        cum = np.cumsum(w[order])
        prov_sorted = schools.province[sch]
        n_prov = len(PROVINCE_CODES)
        first = np.searchsorted(prov_sorted, np.arange(n_prov), side="left")
        last = np.searchsorted(prov_sorted, np.arange(n_prov), side="right")
        before = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
        total = np.where(last > first, cum[np.maximum(last - 1, 0)] - before, 0.0)
        p = province[rows]
        has = total[p] > 0
        target = np.where(has, before[p] + u[rows] * total[p], u[rows] * cum[-1])
        idx = np.minimum(np.searchsorted(cum, target, side="right"), len(cum) - 1)
        out[rows] = sch[idx]
    return out
