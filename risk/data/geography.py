"""Thailand's 77 provinces (TIS 1099 codes) in the six geographic regions.

Codes are the 2-digit province codes used by DOPA and OBEC; districts (amphoe)
are 4-digit codes that start with their province code.
"""

from __future__ import annotations

__all__ = ["PROVINCES", "PROVINCE_CODES", "REGIONS", "region_of"]

REGIONS = ("north", "northeast", "central", "east", "west", "south")

# code -> (English name, region). Six-region system of the National Research Council.
PROVINCES: dict[str, tuple[str, str]] = {
    "10": ("Bangkok", "central"), "11": ("Samut Prakan", "central"),
    "12": ("Nonthaburi", "central"), "13": ("Pathum Thani", "central"),
    "14": ("Phra Nakhon Si Ayutthaya", "central"), "15": ("Ang Thong", "central"),
    "16": ("Lopburi", "central"), "17": ("Sing Buri", "central"),
    "18": ("Chai Nat", "central"), "19": ("Saraburi", "central"),
    "20": ("Chonburi", "east"), "21": ("Rayong", "east"), "22": ("Chanthaburi", "east"),
    "23": ("Trat", "east"), "24": ("Chachoengsao", "east"), "25": ("Prachinburi", "east"),
    "26": ("Nakhon Nayok", "central"), "27": ("Sa Kaeo", "east"),
    "30": ("Nakhon Ratchasima", "northeast"), "31": ("Buriram", "northeast"),
    "32": ("Surin", "northeast"), "33": ("Sisaket", "northeast"),
    "34": ("Ubon Ratchathani", "northeast"), "35": ("Yasothon", "northeast"),
    "36": ("Chaiyaphum", "northeast"), "37": ("Amnat Charoen", "northeast"),
    "38": ("Bueng Kan", "northeast"), "39": ("Nong Bua Lamphu", "northeast"),
    "40": ("Khon Kaen", "northeast"), "41": ("Udon Thani", "northeast"),
    "42": ("Loei", "northeast"), "43": ("Nong Khai", "northeast"),
    "44": ("Maha Sarakham", "northeast"), "45": ("Roi Et", "northeast"),
    "46": ("Kalasin", "northeast"), "47": ("Sakon Nakhon", "northeast"),
    "48": ("Nakhon Phanom", "northeast"), "49": ("Mukdahan", "northeast"),
    "50": ("Chiang Mai", "north"), "51": ("Lamphun", "north"), "52": ("Lampang", "north"),
    "53": ("Uttaradit", "north"), "54": ("Phrae", "north"), "55": ("Nan", "north"),
    "56": ("Phayao", "north"), "57": ("Chiang Rai", "north"), "58": ("Mae Hong Son", "north"),
    "60": ("Nakhon Sawan", "central"), "61": ("Uthai Thani", "central"),
    "62": ("Kamphaeng Phet", "central"), "63": ("Tak", "west"),
    "64": ("Sukhothai", "central"), "65": ("Phitsanulok", "central"),
    "66": ("Phichit", "central"), "67": ("Phetchabun", "central"),
    "70": ("Ratchaburi", "west"), "71": ("Kanchanaburi", "west"),
    "72": ("Suphan Buri", "central"), "73": ("Nakhon Pathom", "central"),
    "74": ("Samut Sakhon", "central"), "75": ("Samut Songkhram", "central"),
    "76": ("Phetchaburi", "west"), "77": ("Prachuap Khiri Khan", "west"),
    "80": ("Nakhon Si Thammarat", "south"), "81": ("Krabi", "south"),
    "82": ("Phang Nga", "south"), "83": ("Phuket", "south"), "84": ("Surat Thani", "south"),
    "85": ("Ranong", "south"), "86": ("Chumphon", "south"), "90": ("Songkhla", "south"),
    "91": ("Satun", "south"), "92": ("Trang", "south"), "93": ("Phatthalung", "south"),
    "94": ("Pattani", "south"), "95": ("Yala", "south"), "96": ("Narathiwat", "south"),
}  # fmt: skip
PROVINCE_CODES: tuple[str, ...] = tuple(PROVINCES)
assert len(PROVINCES) == 77


def region_of(province_code: str) -> str:
    """Region of a province code, e.g. ``region_of("40") == "northeast"``."""
    return PROVINCES[province_code][1]
