"""Colour scales and legends shared by every layer.

Every palette here stays readable for the ~8 % of men with a red-green colour-vision deficiency:

* sequential ramps are the perceptually uniform matplotlib maps (viridis, inferno, cividis):
  lightness rises monotonically, so order survives deuteranopia, protanopia and greyscale;
  cividis was designed specifically to look the same to deuteranopes (Nuñez et al. 2018);
* categorical colours come from the Okabe-Ito palette (Okabe & Ito 2008), chosen so that every
  pair used together stays apart under simulated deuteranopia and protanopia
  (:func:`simulate_cvd`, checked by the tests).

Colours are ``(r, g, b, a)`` tuples of 0-255 integers (deck.gl's format). Every scale has an
explicit domain; values outside it are clamped and NaN gets :data:`NO_DATA`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layers.errors import LayerInputError

__all__ = [
    "CASE_RAMP",
    "CIVIDIS",
    "FACILITY_GROUPS",
    "GRADE_COLORS",
    "INFERNO",
    "NO_DATA",
    "OKABE_ITO",
    "TIER_COLORS",
    "VIRIDIS",
    "CategoricalScale",
    "Legend",
    "LegendStop",
    "SequentialScale",
    "color_difference",
    "simulate_cvd",
]

RGBA = tuple[int, int, int, int]


def _hex(colors: Sequence[str]) -> tuple[tuple[int, int, int], ...]:
    return tuple(tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colors)  # type: ignore[misc]


#: matplotlib's viridis, 10 stops (dark purple -> yellow).
VIRIDIS = _hex(["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
                "#6ece58", "#b5de2b", "#fde725"])
#: matplotlib's inferno without its two near-black stops (visible on a dark base map).
INFERNO = _hex(["#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d",
                "#fcffa4"])
#: cividis (Nuñez, Anderton & Renslow 2018), designed for deuteranopes; dark blue -> yellow.
CIVIDIS = _hex(["#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779", "#a69d75",
                "#c4b56c", "#e4cf5b", "#fee838"])

#: Case counts: ColorBrewer's single-hue blue-green ramp (YlGnBu, dark to light on the dark
#: map), distinct from risk's inferno and safe under colour-vision deficiencies.
CASE_RAMP = _hex(["#225ea8", "#1d91c0", "#41b6c4", "#7fcdbb", "#c7e9b4", "#ffffd9"])

#: The Okabe-Ito colour-blind-safe qualitative palette (black left out: the map is dark).
OKABE_ITO: dict[str, tuple[int, int, int]] = {
    "orange": (230, 159, 0), "sky_blue": (86, 180, 233), "bluish_green": (0, 158, 115),
    "yellow": (240, 228, 66), "blue": (0, 114, 178), "vermillion": (213, 94, 0),
    "reddish_purple": (204, 121, 167), "grey": (153, 153, 153),
}

#: Grey, mostly transparent: values that are missing.
NO_DATA: RGBA = (128, 128, 128, 40)

#: Zone tiers: vermillion / yellow / blue differ in lightness and along the blue-yellow axis
#: that deuteranopes and protanopes keep.
TIER_COLORS: dict[str, tuple[int, int, int]] = {
    "lockdown": OKABE_ITO["vermillion"], "control": OKABE_ITO["yellow"],
    "prevention": OKABE_ITO["blue"],
}
#: Risk grades share the tier colours (high risk -> lockdown, …): one meaning, one colour.
GRADE_COLORS: dict[str, tuple[int, int, int]] = {
    "high": TIER_COLORS["lockdown"], "medium": TIER_COLORS["control"],
    "low": TIER_COLORS["prevention"],
}
#: Facility kinds in four groups (13 kinds cannot all be told apart by colour alone; the
#: tooltip names the kind): group -> (colour, kinds, zh label, en label). These four
#: Okabe-Ito colours are the set with the largest smallest ΔE (34) under deuteranopia and
#: protanopia.
FACILITY_GROUPS: dict[str, tuple[tuple[int, int, int], tuple[str, ...], str, str]] = {
    "medical": (OKABE_ITO["sky_blue"],
                ("hospital", "fever_clinic", "clinic", "pharmacy", "testing_site"),
                "医疗", "medical"),
    "supplies": (OKABE_ITO["yellow"], ("supermarket", "market", "convenience_store"),
                 "生活物资", "daily supplies"),
    "logistics": (OKABE_ITO["bluish_green"], ("warehouse",), "仓储", "warehouses"),
    "care": (OKABE_ITO["vermillion"],
             ("quarantine_site", "shelter", "nursing_home", "school"),
             "隔离与照护", "isolation and care"),
}


# == legends ===================================================================================
@dataclass(frozen=True)
class LegendStop:
    """One swatch of a legend: a value (or category) with its colour and labels."""

    value: float | str | None
    color: RGBA
    label_zh: str
    label_en: str

    def label(self, lang: str = "zh") -> str:
        return self.label_zh if lang == "zh" else self.label_en


@dataclass(frozen=True)
class Legend:
    """What a layer's colours mean: a title and unit in both languages and its stops.

    ``kind`` is ``"continuous"`` (stops sample a ramp from the domain's low to high end),
    ``"categorical"`` (one stop per class) or ``"size"`` (stops give marker sizes, with
    ``color`` the marker colour). ``note_zh``/``note_en`` say anything else the reader needs.
    """

    key: str
    title_zh: str
    title_en: str
    unit_zh: str
    unit_en: str
    kind: str
    stops: tuple[LegendStop, ...]
    note_zh: str = ""
    note_en: str = ""

    def title(self, lang: str = "zh") -> str:
        return self.title_zh if lang == "zh" else self.title_en

    def unit(self, lang: str = "zh") -> str:
        return self.unit_zh if lang == "zh" else self.unit_en

    def to_dict(self, lang: str | None = None) -> dict[str, Any]:
        """JSON-ready: both languages when ``lang`` is None, otherwise the one asked for."""
        if lang is None:
            return {"key": self.key, "kind": self.kind, "title_zh": self.title_zh,
                    "title_en": self.title_en, "unit_zh": self.unit_zh, "unit_en": self.unit_en,
                    "note_zh": self.note_zh, "note_en": self.note_en,
                    "stops": [{"value": s.value, "color": list(s.color), "label_zh": s.label_zh,
                               "label_en": s.label_en} for s in self.stops]}
        return {"key": self.key, "kind": self.kind, "title": self.title(lang),
                "unit": self.unit(lang), "note": self.note_zh if lang == "zh" else self.note_en,
                "stops": [{"value": s.value, "color": list(s.color), "label": s.label(lang)}
                          for s in self.stops]}

    def to_html(self, lang: str = "zh") -> str:
        """A small self-contained HTML legend (inline styles, no external resources)."""
        from html import escape

        unit = f" ({escape(self.unit(lang))})" if self.unit(lang) else ""
        rows = []
        for s in self.stops:
            r, g, b, a = s.color
            # Sizes in em: the legend scales with the text of the page that shows it.
            rows.append(f'<div><span style="display:inline-block;width:1em;height:1em;'
                        f'margin-right:0.4em;vertical-align:middle;'
                        f'background:rgba({r},{g},{b},{max(a, 160) / 255:.2f})"></span>'
                        f"{escape(s.label(lang))}</div>")
        note = self.note_zh if lang == "zh" else self.note_en
        foot = f'<div style="opacity:.7">{escape(note)}</div>' if note else ""
        return (f'<div class="citytwin-legend"><b>{escape(self.title(lang))}{unit}</b>'
                f"{''.join(rows)}{foot}</div>")


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


# == scales ====================================================================================
@dataclass(frozen=True)
class SequentialScale:
    """A ramp over an explicit ``domain``: ``domain[0]`` -> first stop, ``domain[1]`` -> last.

    ``reverse`` flips the ramp; ``alpha`` is one opacity or a ``(low, high)`` pair
    interpolated like the colour (low values fade into the base map).
    """

    ramp: tuple[tuple[int, int, int], ...]
    domain: tuple[float, float]
    alpha: int | tuple[int, int] = 200
    reverse: bool = False

    def __post_init__(self) -> None:
        lo, hi = self.domain
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            raise LayerInputError(f"a scale's domain must be two finite, increasing numbers "
                                  f"(low, high), got {self.domain}; pass e.g. domain=(0, 100)")

    def position(self, values: Any) -> np.ndarray:
        """Where each value falls on the ramp, in [0, 1] (NaN stays NaN)."""
        v = np.asarray(values, dtype=float)
        lo, hi = self.domain
        t = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
        return 1.0 - t if self.reverse else t

    def rgba(self, values: Any) -> np.ndarray:
        """``(n, 4)`` uint8 colours of ``values``."""
        t = np.atleast_1d(self.position(values))
        ramp = np.asarray(self.ramp, dtype=float)
        x = np.linspace(0.0, 1.0, len(ramp))
        safe = np.nan_to_num(t, nan=0.0)
        out = np.empty((len(t), 4), dtype=float)
        for channel in range(3):
            out[:, channel] = np.interp(safe, x, ramp[:, channel])
        lo_a, hi_a = (self.alpha, self.alpha) if isinstance(self.alpha, int) else self.alpha
        tt = 1.0 - safe if self.reverse else safe  # opacity follows the value, not the ramp
        out[:, 3] = lo_a + (hi_a - lo_a) * tt
        colors = np.rint(out).astype(np.uint8)
        colors[np.isnan(t)] = NO_DATA
        return colors

    def color(self, value: float) -> RGBA:
        """The colour of one value."""
        r, g, b, a = (int(c) for c in self.rgba([value])[0])
        return (r, g, b, a)

    def legend(self, key: str, title: tuple[str, str], unit: tuple[str, str], *,
               stops: int = 5, note: tuple[str, str] = ("", ""),
               open_high: bool = True) -> Legend:
        """A continuous legend sampling the domain at ``stops`` evenly spaced values.

        ``open_high`` labels the top stop ``≥ hi`` (values above the domain are clamped).
        """
        lo, hi = self.domain
        values = np.linspace(lo, hi, stops)
        items = []
        for i, v in enumerate(values):
            text = _fmt(float(v))
            if open_high and i == len(values) - 1:
                text = f"≥ {text}"
            items.append(LegendStop(float(v), self.color(float(v)), text, text))
        return Legend(key, title[0], title[1], unit[0], unit[1], "continuous", tuple(items),
                      note[0], note[1])


@dataclass(frozen=True)
class CategoricalScale:
    """Colours for named classes, with labels in both languages."""

    colors: Mapping[str, tuple[int, int, int]]
    labels: Mapping[str, tuple[str, str]]
    alpha: int = 200
    default: RGBA = NO_DATA
    order: tuple[str, ...] = field(default=())

    def color(self, value: str) -> RGBA:
        rgb = self.colors.get(value)
        return self.default if rgb is None else (*rgb, self.alpha)

    def rgba(self, values: Any) -> np.ndarray:
        """``(n, 4)`` uint8 colours of ``values`` (unknown classes get ``default``)."""
        values = list(values)
        out = np.empty((len(values), 4), dtype=np.uint8)
        cache: dict[Any, RGBA] = {}
        for i, v in enumerate(values):
            if v not in cache:
                cache[v] = self.color(v)
            out[i] = cache[v]
        return out

    def legend(self, key: str, title: tuple[str, str], unit: tuple[str, str] = ("", ""), *,
               note: tuple[str, str] = ("", "")) -> Legend:
        names = self.order or tuple(self.colors)
        stops = tuple(LegendStop(n, self.color(n), *self.labels.get(n, (n, n))) for n in names)
        return Legend(key, title[0], title[1], unit[0], unit[1], "categorical", stops,
                      note[0], note[1])


# == colour-vision checks ======================================================================
#: Machado, Oliveira & Fernandes (2009), severity 1.0, on linear RGB.
_CVD = {
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    c = rgb / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return c * 255.0


def simulate_cvd(rgb: Any, kind: str = "deuteranopia") -> np.ndarray:
    """How colours (``(..., 3)`` 0-255) look with a colour-vision deficiency."""
    rgb = np.asarray(rgb, dtype=float)[..., :3]
    return _to_srgb(_to_linear(rgb) @ _CVD[kind].T)


def _lab(rgb: np.ndarray) -> np.ndarray:
    lin = _to_linear(np.asarray(rgb, dtype=float)[..., :3])
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def color_difference(a: Any, b: Any, kind: str | None = None) -> float:
    """CIE76 ΔE between two colours, optionally as seen with a deficiency ``kind``."""
    a = np.asarray(a, dtype=float)[:3]
    b = np.asarray(b, dtype=float)[:3]
    if kind is not None:
        a, b = simulate_cvd(a, kind), simulate_cvd(b, kind)
    return float(np.linalg.norm(_lab(a) - _lab(b)))
