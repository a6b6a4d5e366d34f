"""The workspace configuration file, ``twin.toml``.

``defaults.toml`` beside this module is the single source of truth: it holds every key with its
documented default, :func:`render_config` turns it into a new workspace's ``twin.toml`` and
:func:`load_config` merges a workspace's file over it and validates the result, reporting every
problem at once.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from twin.errors import ConfigError
from twin.schema import ZONE_TIERS

__all__ = [
    "LANGUAGES",
    "ZONE_TIERS",
    "Config",
    "default_config",
    "load_config",
    "parse_bbox",
    "render_config",
]

LANGUAGES = ("zh", "en")
_NEED_POPULATIONS = ("residents", "chronic_patients")
_NEED_KEYS = {"unit": str, "per_capita_daily": float, "tiers": list, "population": str,
              "basis": str}

# Sections whose keys are user-defined names (each value is checked separately).
_OPEN_TABLES = {("needs",), ("events", "categories")}
# Keys that are optional and therefore absent from the defaults.
_OPTIONAL_KEYS = {("city", "bbox")}
#: Keys of earlier releases that are read and ignored, so that old workspaces still open: the
#: first release's risk score (weights, prior, window, score thresholds) gave way to the
#: forecast (see twin.risk).
_RETIRED_KEYS = {("risk", "weights"), ("risk", "prior_residents"), ("risk", "window_days"),
                 ("risk", "grades", "high"), ("risk", "grades", "medium")}


def _defaults_text() -> str:
    return resources.files("twin").joinpath("defaults.toml").read_text(encoding="utf-8")


def default_config() -> dict[str, Any]:
    """Return the default configuration as a fresh nested dictionary."""
    return tomllib.loads(_defaults_text())


def parse_bbox(text: str | list[float] | tuple[float, ...]) -> tuple[float, float, float, float]:
    """Parse and check a WGS84 bounding box ``min_lon,min_lat,max_lon,max_lat``.

    Raises
    ------
    ConfigError
        When the box does not have four finite numbers in the right order and range.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(
            f"bbox {text!r} is not four numbers; write it as min_lon,min_lat,max_lon,max_lat, "
            "e.g. 121.30,31.10,121.65,31.40"
        ) from None
    problems = _bbox_problems(values)
    if problems:
        raise ConfigError(f"bbox {text!r} is invalid: " + "; ".join(problems))
    return values  # type: ignore[return-value]


def _bbox_problems(values: tuple[float, ...]) -> list[str]:
    if len(values) != 4:
        return [f"it has {len(values)} numbers, expected 4 (min_lon,min_lat,max_lon,max_lat)"]
    if not all(math.isfinite(v) for v in values):
        return ["all four numbers must be finite"]
    minx, miny, maxx, maxy = values
    problems = []
    if not (-180 <= minx < maxx <= 180):
        problems.append(f"longitudes must satisfy -180 <= min_lon < max_lon <= 180, got "
                        f"{minx} and {maxx}")
    if not (-90 <= miny < maxy <= 90):
        problems.append(f"latitudes must satisfy -90 <= min_lat < max_lat <= 90, got "
                        f"{miny} and {maxy}")
    if problems and -90 <= minx <= 90 and -180 <= miny <= 180 and abs(miny) > 90:
        problems.append("it looks like latitude and longitude are swapped")
    return problems


def render_config(name: str, *, name_en: str = "", language: str = "zh",
                  bbox: tuple[float, float, float, float] | None = None) -> str:
    """Return the text of a new workspace's ``twin.toml``, comments included.

    Parameters
    ----------
    name
        City name (any script).
    name_en
        Optional English city name.
    language
        Default label language, ``"zh"`` or ``"en"``.
    bbox
        City area in WGS84, or ``None`` to leave it unset.
    """
    if not name.strip():
        raise ConfigError("the city name is empty; give one with --name, e.g. --name 示范市")
    if language not in LANGUAGES:
        raise ConfigError(f"language {language!r} is not supported; use one of "
                          f"{', '.join(LANGUAGES)}")
    text = _defaults_text()
    # JSON string escapes are valid TOML basic strings; keep Chinese readable.
    replacements = {
        'name = ""': f"name = {json.dumps(name.strip(), ensure_ascii=False)}",
        'name_en = ""': f"name_en = {json.dumps(name_en.strip(), ensure_ascii=False)}",
        'language = "zh"': f"language = {json.dumps(language)}",
    }
    if bbox is not None:
        bbox = parse_bbox(list(bbox))
        replacements["# bbox = [121.30, 31.10, 121.65, 31.40]"] = (
            # repr: the shortest text that reads back as the same float (no rounding, so a
            # boundary drawn exactly on the box stays inside it)
            "bbox = [" + ", ".join(repr(float(v)) for v in bbox) + "]"
        )
    for old, new in replacements.items():
        if old not in text:  # pragma: no cover - guards defaults.toml edits
            raise AssertionError(f"defaults.toml lost the line {old!r}")
        text = text.replace(old, new, 1)
    load_config_text(text, source="<rendered twin.toml>")  # never write a file we cannot read
    return text


@dataclass(frozen=True)
class Config:
    """A validated workspace configuration.

    The nested dictionary ``data`` holds every key (defaults merged with the file); the
    properties give typed access to the values used most.
    """

    data: Mapping[str, Any]
    source: str

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def name(self) -> str:
        """City name."""
        return self.data["city"]["name"]

    def display_name(self, lang: str) -> str:
        """The city's name in ``lang``: ``name_en`` for English when it is set."""
        name_en = str(self.data["city"].get("name_en") or "")
        return name_en if lang == "en" and name_en else self.name

    @property
    def language(self) -> str:
        """Default label language."""
        return self.data["city"]["language"]

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        """City area in WGS84, if configured."""
        bbox = self.data["city"].get("bbox")
        return tuple(bbox) if bbox is not None else None  # type: ignore[return-value]

    @property
    def base_resolution(self) -> int:
        """H3 base resolution of the cell facts."""
        return self.data["grid"]["base_resolution"]

    @property
    def rollups(self) -> tuple[int, ...]:
        """Coarser H3 resolutions, finest first."""
        return tuple(self.data["grid"]["rollups"])

    @property
    def ingest_limits(self) -> dict[str, float]:
        """The ``[ingest]`` limits."""
        return dict(self.data["ingest"])

    @property
    def busy_timeout_s(self) -> float:
        """Seconds a writer waits for the database."""
        return float(self.data["store"]["busy_timeout_s"])


def load_config(path: Path) -> Config:
    """Read and validate a workspace's ``twin.toml``.

    Raises
    ------
    ConfigError
        Listing every problem found, each with the key it concerns and how to fix it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          "save it as UTF-8") from None
    return load_config_text(text, source=str(path))


def load_config_text(text: str, *, source: str = "twin.toml") -> Config:
    """Validate configuration text; see :func:`load_config`."""
    try:
        user = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}. Fix that line, or compare "
                          "with a fresh file from `twin init`") from None
    defaults = default_config()
    problems: list[str] = []
    merged = _merge(defaults, user, (), problems)
    if not problems:
        problems.extend(_check_values(merged))
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source} has {len(problems)} problem"
                          f"{'s' if len(problems) > 1 else ''}:\n{lines}")
    return Config(data=merged, source=source)


def _merge(default: dict[str, Any], user: dict[str, Any], path: tuple[str, ...],
           problems: list[str]) -> dict[str, Any]:
    merged = copy.deepcopy(default)
    for key, value in user.items():
        here = (*path, key)
        dotted = ".".join(here)
        if path in _OPEN_TABLES:
            merged[key] = value
            continue
        if here in _RETIRED_KEYS:
            continue
        if key not in default and here not in _OPTIONAL_KEYS:
            hint = difflib.get_close_matches(key, list(default), n=1)
            suggestion = f"; did you mean {'.'.join((*path, hint[0]))!r}?" if hint else (
                f"; known keys here: {', '.join(sorted(default))}")
            problems.append(f"unknown key {dotted!r}{suggestion}")
            continue
        expected = default.get(key)
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                problems.append(f"{dotted!r} must be a table ([{dotted}]), got {value!r}")
                continue
            merged[key] = _merge(expected, value, here, problems)
        elif expected is not None and not _same_type(expected, value):
            problems.append(f"{dotted!r} must be {_type_name(expected)}, got {value!r}")
        else:
            merged[key] = value
    return merged


def _same_type(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool)
    if isinstance(expected, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(expected))


def _type_name(value: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number",
            str: "a text in quotes", list: "a list [..]"}.get(type(value), type(value).__name__)


def _check_values(cfg: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    city = cfg["city"]
    if city["language"] not in LANGUAGES:
        problems.append(f"'city.language' is {city['language']!r}; use one of "
                        f"{', '.join(map(repr, LANGUAGES))}")
    if "bbox" in city:
        bbox = city["bbox"]
        if not isinstance(bbox, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            problems.append(f"'city.bbox' must be a list of four numbers, got {bbox!r}")
        else:
            problems.extend(f"'city.bbox' {p}" for p in _bbox_problems(tuple(bbox)))

    grid = cfg["grid"]
    base = grid["base_resolution"]
    if not 0 <= base <= 15:
        problems.append(f"'grid.base_resolution' is {base}; H3 resolutions run from 0 to 15")
    rollups = grid["rollups"]
    if not all(isinstance(r, int) and not isinstance(r, bool) for r in rollups):
        problems.append(f"'grid.rollups' must be whole numbers, got {rollups!r}")
    elif any(not 0 <= r < base for r in rollups) or rollups != sorted(set(rollups),
                                                                       reverse=True):
        problems.append(f"'grid.rollups' is {rollups!r}; it must list distinct resolutions "
                        f"coarser than the base ({base}), finest first, e.g. [9, 8, 7]")

    if cfg["store"]["busy_timeout_s"] <= 0:
        problems.append("'store.busy_timeout_s' must be positive")

    ingest = cfg["ingest"]
    for key, value in ingest.items():
        if key == "min_inside_share":
            if not 0 <= value <= 1:
                problems.append(f"'ingest.min_inside_share' must be between 0 and 1, got {value}")
        elif value <= 0:
            problems.append(f"'ingest.{key}' must be positive, got {value}")

    if cfg["fuse"]["raster_samples"] < 0:
        problems.append("'fuse.raster_samples' must be 0 (automatic) or a positive number")

    risk = cfg["risk"]
    grades = risk["grades"]
    if not 0 < grades["medium_per_10k"] < grades["high_per_10k"]:
        problems.append(f"'risk.grades' must satisfy 0 < medium_per_10k < high_per_10k, got "
                        f"medium_per_10k={grades['medium_per_10k']}, "
                        f"high_per_10k={grades['high_per_10k']}")
    if not 1 <= risk["horizon_days"] <= 28:
        problems.append(f"'risk.horizon_days' must be 1 to 28, got {risk['horizon_days']}")
    if risk["vulnerable_weight"] < 0:
        problems.append(f"'risk.vulnerable_weight' must be 0 or more, got "
                        f"{risk['vulnerable_weight']}")

    for key, value in cfg["zones"].items():
        if value < (0 if key == "control_ring" else 1):
            problems.append(f"'zones.{key}' must be a positive number of "
                            f"{'rings' if key == 'control_ring' else 'days'}, got {value}")

    supply = cfg["supply"]
    if supply["horizon_days"] < 1:
        problems.append(f"'supply.horizon_days' must be at least 1, got "
                        f"{supply['horizon_days']}")
    if supply["service_radius_m"] < 0:
        problems.append("'supply.service_radius_m' must not be negative")
    if not 0 <= supply["bed_share_of_active_cases"] <= 1:
        problems.append("'supply.bed_share_of_active_cases' must be between 0 and 1")

    for name, need in cfg["needs"].items():
        problems.extend(_need_problems(name, need))

    alerts = cfg["alerts"]
    if not 0 < alerts["bed_occupancy"] <= 1:
        problems.append("'alerts.bed_occupancy' must be a share between 0 and 1, e.g. 0.85")
    if alerts["min_days_of_cover"] < 0:
        problems.append("'alerts.min_days_of_cover' must not be negative")
    if any(h <= 0 for h in alerts["refresh_hours"].values()):
        problems.append("'alerts.refresh_hours' values must be positive hours")

    privacy = cfg["privacy"]
    if not 0 <= privacy["viewer_resolution"] <= base:
        problems.append(f"'privacy.viewer_resolution' must be between 0 and the base "
                        f"resolution {base}")
    if privacy["suppress_below"] < 1:
        problems.append("'privacy.suppress_below' must be at least 1")

    problems.extend(_events_problems(cfg["events"], cfg["needs"]))

    security = cfg["security"]
    for key, value in security.items():
        if (value <= 0 and key != "login_free_failures") or value < 0:
            problems.append(f"'security.{key}' must be positive, got {value}")
    if security["login_lockout_failures"] <= security["login_free_failures"]:
        problems.append("'security.login_lockout_failures' must be above "
                        "'security.login_free_failures'")
    return problems


def _unknown_keys(where: str, table: dict[str, Any], known: dict[str, Any]) -> list[str]:
    """A problem per key of ``table`` not in ``known``, with the closest known key."""
    problems = []
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, list(known), n=1)
            problems.append(f"unknown key '{where}.{key}'"
                            + (f"; did you mean {hint[0]!r}?" if hint else ""))
    return problems


_PRIORITIES = ("urgent", "high", "normal", "low")
_CATEGORY_KEYS = {"zh": str, "en": str, "synonyms": list, "due_hours": dict,
                  "lockdown_due_hours": float}
_CATEGORY_OPTIONAL = {"need": str, "need_per_request": float}


def _events_problems(events: dict[str, Any], needs: dict[str, Any]) -> list[str]:
    problems = [f"'events.{key}' must be positive, got {events[key]}"
                for key in ("duplicate_window_hours", "escalation_hours",
                            "escalation_check_minutes") if events[key] <= 0]
    if events["duplicate_radius_m"] < 0:
        problems.append("'events.duplicate_radius_m' must not be negative")
    categories = events["categories"]
    if "other" not in categories:
        problems.append("'events.categories' needs an 'other' category (it takes the reports "
                        "that match no category)")
    for name, cat in categories.items():
        where = f"'events.categories.{name}'"
        if not isinstance(cat, dict):
            problems.append(f"{where} must be a table with keys {', '.join(_CATEGORY_KEYS)}")
            continue
        known = {**_CATEGORY_KEYS, **_CATEGORY_OPTIONAL}
        problems.extend(_unknown_keys(f"events.categories.{name}", cat, known))
        for key, kind in known.items():
            if key not in cat:
                if key in _CATEGORY_KEYS:
                    problems.append(f"{where} lacks {key!r}")
            elif not _same_type(kind(), cat[key]):
                problems.append(f"'events.categories.{name}.{key}' must be "
                                f"{_type_name(kind())}, got {cat[key]!r}")
        due = cat.get("due_hours")
        if isinstance(due, dict):
            missing = [p for p in _PRIORITIES if p not in due]
            extra = [p for p in due if p not in _PRIORITIES]
            if missing or extra:
                problems.append(f"'events.categories.{name}.due_hours' must give hours for "
                                f"exactly {', '.join(_PRIORITIES)}; "
                                + ("lacks " + ", ".join(missing) if missing else
                                   "unknown " + ", ".join(extra)))
            elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                         for v in due.values()):
                problems.append(f"'events.categories.{name}.due_hours' values must be positive "
                                "hours")
        if isinstance(cat.get("lockdown_due_hours"), (int, float)) and \
                cat["lockdown_due_hours"] <= 0:
            problems.append(f"'events.categories.{name}.lockdown_due_hours' must be positive")
        if "need" in cat and cat["need"] not in needs:
            problems.append(f"'events.categories.{name}.need' is {cat['need']!r}, which is not "
                            f"a need; use one of {', '.join(needs)}")
        if ("need" in cat) != ("need_per_request" in cat):
            problems.append(f"{where}: give both 'need' and 'need_per_request', or neither")
    return problems


def _need_problems(name: str, need: Any) -> list[str]:
    where = f"'needs.{name}'"
    if not isinstance(need, dict):
        return [f"{where} must be a table with keys {', '.join(_NEED_KEYS)}"]
    problems = _unknown_keys(f"needs.{name}", need, _NEED_KEYS)
    for key, kind in _NEED_KEYS.items():
        if key not in need:
            problems.append(f"{where} lacks {key!r}")
        elif not _same_type(kind(), need[key]):
            problems.append(f"'needs.{name}.{key}' must be {_type_name(kind())}, got "
                            f"{need[key]!r}")
    if problems:
        return problems
    if need["per_capita_daily"] < 0:
        problems.append(f"'needs.{name}.per_capita_daily' must not be negative")
    bad = [t for t in need["tiers"] if t not in ZONE_TIERS]
    if bad:
        problems.append(f"'needs.{name}.tiers' has {bad!r}; zone tiers are "
                        f"{', '.join(ZONE_TIERS)}")
    if need["population"] not in _NEED_POPULATIONS:
        problems.append(f"'needs.{name}.population' is {need['population']!r}; use one of "
                        f"{', '.join(_NEED_POPULATIONS)}")
    return problems
