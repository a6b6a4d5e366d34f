"""Reading residents' requests from the hotline's CSV exports and from Open311 requests.

Hotline systems export CSV in GBK or UTF-8 with Chinese headers; :func:`read_hotline_csv`
finds the columns by their usual names, maps category, priority and channel words to our
codes, resolves building ids to places and converts coordinates to WGS84. Rows it cannot use
are listed by line with the reason; by default the whole file is then refused (nothing is
imported), with ``skip_bad`` the usable rows go in and the rest are reported.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import EventInputError
from twin.events.locate import Locator
from twin.events.rules import Category, classify, parse_channel, parse_priority
from twin.events.store import INTAKE_COLUMNS, Event, Events

__all__ = ["COLUMN_NAMES", "Parsed", "normalise", "read_hotline_csv", "submit"]

#: Our column -> the headers hotline exports use for it (compared without case or spaces).
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "ref": ("工单编号", "工单号", "受理编号", "编号", "ticket", "ref", "id", "service_request_id"),
    "reported_at": ("受理时间", "来电时间", "上报时间", "登记时间", "时间", "reported_at",
                    "requested_datetime", "time"),
    "category": ("诉求类别", "诉求类型", "事件类型", "类别", "类型", "category", "service_code"),
    "priority": ("紧急程度", "优先级", "缓急程度", "priority"),
    "channel": ("来源渠道", "渠道", "来源", "channel"),
    "address": ("诉求地址", "地址", "事发地址", "address", "address_string"),
    "building_id": ("建筑编号", "楼栋编号", "building_id"),
    "lng": ("经度", "lng", "lon", "long", "longitude", "x"),
    "lat": ("纬度", "lat", "latitude", "y"),
    "description": ("诉求内容", "内容", "描述", "问题描述", "description"),
    "reporter": ("来电人", "联系人", "上报人", "诉求人", "reporter", "name", "first_name"),
    "phone": ("联系电话", "电话", "手机", "手机号", "来电号码", "phone"),
}
_REQUIRED = ("reported_at", "category")
_COORDS = ("wgs84", "gcj02", "bd09")


@dataclass
class Parsed:
    """A hotline file read: the usable rows (normalised) and the problems by line."""

    frame: pd.DataFrame
    problems: list[tuple[int, str]] = field(default_factory=list)
    unmatched_categories: dict[str, int] = field(default_factory=dict)
    encoding: str = "utf-8"
    rows: int = 0


def _decode(data: bytes, name: str) -> tuple[str, str]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding), "UTF-8" if encoding == "utf-8-sig" else "GBK"
        except UnicodeDecodeError as exc:
            last = exc
    raise EventInputError(f"{name} is neither UTF-8 nor GBK text (byte {last.start}: "
                          f"{data[last.start:last.start + 4]!r}); export it again as CSV")


def _key(header: str) -> str:
    return "".join(str(header).split()).lower()


def _columns(headers: list[str], name: str) -> dict[str, str]:
    by_key = {_key(h): h for h in headers}
    found: dict[str, str] = {}
    for ours, names in COLUMN_NAMES.items():
        for candidate in names:
            if _key(candidate) in by_key:
                found[ours] = by_key[_key(candidate)]
                break
    missing = [c for c in _REQUIRED if c not in found]
    if "building_id" not in found and not {"lng", "lat"} <= set(found):
        missing.append("building_id or lng/lat")
    if missing:
        raise EventInputError(
            f"{name} has no column for {', '.join(missing)}; its columns are "
            f"{', '.join(headers[:20])}. Expected headers such as "
            + "; ".join(f"{c}: {'/'.join(COLUMN_NAMES.get(c, ('建筑编号', '经度', '纬度'))[:3])}"
                        for c in missing))
    return found


def read_hotline_csv(path: str | Path, locator: Locator, table: dict[str, Category], *,
                     coords: str = "wgs84", timezone: str = "Asia/Shanghai",
                     now: dt.datetime | None = None, max_bytes: int | None = None) -> Parsed:
    """Read a hotline export into a normalised frame (see :data:`INTAKE_COLUMNS`).

    Raises
    ------
    EventInputError
        When the file is unreadable, not text, or lacks a needed column.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise EventInputError(f"{path.name} is {size / 1e6:.0f} MB, over the limit of "
                                  f"{max_bytes / 1e6:.0f} MB (ingest.max_file_mb)")
        data = path.read_bytes()
    except FileNotFoundError:
        raise EventInputError(f"no file {path}; give the path of the hotline's CSV "
                              "export") from None
    except IsADirectoryError:
        raise EventInputError(f"{path} is a folder; give the CSV export inside it") from None
    text, encoding = _decode(data, path.name)
    return parse_rows(text, path.name, locator, table, coords=coords, timezone=timezone,
                      now=now, encoding=encoding)


def parse_rows(text: str, name: str, locator: Locator, table: dict[str, Category], *,
               coords: str = "wgs84", timezone: str = "Asia/Shanghai",
               now: dt.datetime | None = None, encoding: str = "UTF-8") -> Parsed:
    """Parse CSV text (see :func:`read_hotline_csv`)."""
    if coords not in _COORDS:
        raise EventInputError(f"coordinates {coords!r}? use one of {', '.join(_COORDS)}")
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise EventInputError(f"{name} is not readable CSV: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise EventInputError(f"{name} is empty; export the hotline's requests with a header "
                              "row")
    headers, body = rows[0], rows[1:]
    found = _columns(headers, name)
    width = len(headers)
    raw = pd.DataFrame([(r + [""] * width)[:width] for r in body], columns=range(width),
                       dtype=object)
    index = {h: i for i, h in enumerate(headers)}
    col = {ours: raw[index[h]].astype(str).str.strip() if len(raw) else pd.Series([], dtype=str)
           for ours, h in found.items()}
    return normalise(col, len(raw), locator, table, coords=coords, timezone=timezone, now=now,
                     encoding=encoding, first_line=2)


def normalise(col: dict[str, pd.Series], n: int, locator: Locator,
              table: dict[str, Category], *, coords: str = "wgs84",
              timezone: str = "Asia/Shanghai", now: dt.datetime | None = None,
              encoding: str = "UTF-8", first_line: int = 1) -> Parsed:
    """Turn text columns (our names) into intake rows; rows with a problem are left out and
    listed (line numbers from ``first_line``)."""
    empty = pd.Series([""] * n, dtype=object)
    get = {c: col.get(c, empty).reset_index(drop=True) for c in COLUMN_NAMES}
    problems: list[tuple[int, str]] = []
    bad = np.zeros(n, dtype=bool)
    lines = np.arange(first_line, first_line + n)

    def refuse(mask: np.ndarray, reason: Any) -> None:
        for i in np.flatnonzero(mask & ~bad):
            problems.append((int(lines[i]), reason(i) if callable(reason) else reason))
        bad[mask] = True

    tz = zoneinfo.ZoneInfo(timezone)
    # The usual export format first (fast); anything else is parsed value by value.
    when = pd.to_datetime(get["reported_at"], errors="coerce", format="%Y-%m-%d %H:%M:%S")
    if when.isna().any():
        when = pd.to_datetime(get["reported_at"], errors="coerce", format="mixed")
    naive = when.dt.tz is None if len(when) else True
    when = when.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT") if naive else when
    when = when.dt.tz_convert("UTC")
    refuse(when.isna().to_numpy(), lambda i: f"time {get['reported_at'][i]!r} is not a date "
           "and time (e.g. 2026-04-30 08:15:00)")
    limit = pd.Timestamp(now or dt.datetime.now(dt.UTC)) + pd.Timedelta(hours=1)
    refuse((when > limit).fillna(False).to_numpy(),
           lambda i: f"time {get['reported_at'][i]!r} is in the future")
    # Each distinct word is looked up once (an export repeats a handful of them).
    words = {v: classify(v, table) for v in pd.unique(get["category"])}
    category = get["category"].map(lambda v: words[v][0]).astype(object)
    counts = get["category"].value_counts()
    unmatched = {str(v): int(counts[v]) for v, (_, ok) in words.items() if not ok}
    priority = _parsed(get["priority"], parse_priority, "normal", refuse, n)
    channel = _parsed(get["channel"], parse_channel, "hotline", refuse, n)
    lng = pd.to_numeric(get["lng"], errors="coerce").to_numpy(float, copy=True)
    lat = pd.to_numeric(get["lat"], errors="coerce").to_numpy(float, copy=True)
    if coords != "wgs84":
        from twin import offsets

        convert = offsets.gcj02_to_wgs84 if coords == "gcj02" else offsets.bd09_to_wgs84
        ok = np.isfinite(lng) & np.isfinite(lat)
        if ok.any():
            lng[ok], lat[ok] = convert(lng[ok], lat[ok])
    building = get["building_id"].astype(str).str.strip()
    by_building = (building != "").to_numpy()
    if by_building.any():
        blng, blat = locator.buildings(building[by_building].to_numpy())
        known = np.isfinite(blng)
        idx = np.flatnonzero(by_building)
        lng[idx[known]], lat[idx[known]] = blng[known], blat[known]
        unknown = np.zeros(n, dtype=bool)
        unknown[idx[~known]] = True
        unknown &= ~(np.isfinite(lng) & np.isfinite(lat))
        refuse(unknown, lambda i: f"building {building[i]!r} is not in the buildings layer "
               "and the row has no coordinates")
    no_place = ~(np.isfinite(lng) & np.isfinite(lat))
    refuse(no_place, "no place: neither a known building id nor coordinates")
    bbox = locator.workspace.config.bbox
    if bbox is not None:
        far = ~no_place & ~((lng >= bbox[0]) & (lng <= bbox[2]) & (lat >= bbox[1])
                            & (lat <= bbox[3]))
        refuse(far, lambda i: f"place ({lng[i]:.5f}, {lat[i]:.5f}) is outside the city "
               "(city.bbox); wrong coordinates or coordinate system (--coords)?")
    frame = pd.DataFrame({
        "ref": get["ref"], "reported_at": when, "category": category,
        "priority": priority, "channel": channel,
        "description": get["description"].map(_plain), "address": get["address"].map(_plain),
        "building_id": building.where(building != "", None), "reporter": get["reporter"].map(
            _plain), "phone": get["phone"].str.replace(r"[\s-]", "", regex=True),
        "lng": lng, "lat": lat})
    keep = ~bad
    return Parsed(frame=frame[keep][list(INTAKE_COLUMNS)].reset_index(drop=True),
                  problems=sorted(problems), unmatched_categories=unmatched, encoding=encoding,
                  rows=n)


def _parsed(values: pd.Series, parse: Any, fallback: str, refuse: Any, n: int) -> list[str]:
    """``parse`` of each value (once per distinct value); rows it refuses are listed."""
    known: dict[str, str] = {}
    for value in pd.unique(values):
        try:
            known[value] = parse(value)
        except EventInputError as exc:
            refuse((values == value).to_numpy(), str(exc))
            known[value] = fallback
    return [known[v] for v in values] if n else []


def submit(events: Events, fields: dict[str, str], *, channel: str, actor: str,
           source: str, now: dt.datetime | None = None) -> Event:
    """One request from a form or another system (Open311): checked like an imported row,
    then taken in; returns the event (a duplicate links to the earlier one).

    ``fields`` holds ``category`` (a code or a word), ``priority``, ``lng``/``lat`` (WGS84) or
    ``building_id``, ``address``, ``description``, ``reporter`` and ``phone``.

    Raises
    ------
    EventInputError
        Naming what is wrong (unknown category, no place, outside the city).
    """
    code = str(fields.get("category", "")).strip()
    if code not in events.categories and classify(code, events.categories) == ("other", False):
        raise EventInputError(f"category {code!r} is not a category; use one of "
                              + ", ".join(f"{c.code} ({c.zh})"
                                          for c in events.categories.values()),
                              zh=f"没有“{code}”这一类别；可选："
                                 + "、".join(c.zh for c in events.categories.values()))
    if not fields.get("building_id") and not (fields.get("lat") and fields.get("lng")):
        raise EventInputError("a request needs its place: lat and long (WGS84), or the id of "
                              "a building", zh="请填写地点：经纬度（WGS84）或楼栋编号")
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    columns = {c: str(fields.get(c, "") or "") for c in COLUMN_NAMES}
    columns.update(ref="", reported_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"), channel=channel)
    parsed = normalise({k: pd.Series([v], dtype=object) for k, v in columns.items()}, 1,
                       events.locator, events.categories,
                       timezone=events.config["city"]["timezone"], now=now)
    if parsed.problems:
        raise EventInputError(parsed.problems[0][1])
    result = events.intake(parsed.frame, actor=actor, source=source, now=now)
    return events.get(result.first_id)


def _plain(value: object) -> str:
    """Text as kept: stripped, at most 2,000 characters (exports make it formula-safe)."""
    return str(value or "").strip()[:2000]
