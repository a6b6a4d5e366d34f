"""Grid staff (网格人员): who works in each grid unit, and which login is whose.

The roster comes from the civil-affairs office as a CSV (grid unit code, name, phone, role,
optional login); importing it replaces the roster in one transaction, after every row is
checked (unknown units and roles are refused with their lines). A staff member with a login
sees and handles their units' events on ``/tasks``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from twin import db
from twin.errors import EventInputError
from twin.events.locate import Locator
from twin.store import Workspace, audit, utc_now

__all__ = ["STAFF_ROLES", "import_staff", "read_staff_csv", "staff", "units_of_user"]

#: Roles of grid staff, with their Chinese names and synonyms.
STAFF_ROLES: dict[str, tuple[str, ...]] = {
    "grid_worker": ("网格员", "专职网格员", "grid worker", "grid_worker"),
    "community_officer": ("社区干部", "社区工作者", "居委干部", "community officer",
                          "community_officer"),
    "volunteer": ("志愿者", "volunteer"),
}
_HEADERS = {
    "unit": ("网格编码", "网格代码", "网格编号", "网格", "grid", "unit", "grid_code"),
    "name": ("姓名", "名字", "name"),
    "phone": ("联系电话", "电话", "手机", "phone"),
    "role": ("角色", "岗位", "职务", "role"),
    "user": ("登录账号", "账号", "用户名", "user", "login"),
}


def _role(value: str) -> str | None:
    v = value.strip().lower()
    for code, words in STAFF_ROLES.items():
        if v in (code, *(w.lower() for w in words)):
            return code
    return None


def read_staff_csv(path: str | Path, locator: Locator) -> pd.DataFrame:
    """The roster of a staff CSV (UTF-8 or GBK), checked against the workspace's grid units.

    Raises
    ------
    EventInputError
        Listing the lines with an unknown unit, an unknown role or no name.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EventInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise EventInputError(f"{path.name} is neither UTF-8 nor GBK text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise EventInputError(f"{path.name} is empty")
    keys = {"".join(h.split()).lower(): i for i, h in enumerate(rows[0])}
    col = {}
    for ours, names in _HEADERS.items():
        col[ours] = next((keys[n.lower()] for n in names if n.lower() in keys), None)
    missing = [c for c in ("unit", "name", "role") if col[c] is None]
    if missing:
        raise EventInputError(f"{path.name} has no column for {', '.join(missing)}; expected "
                              "网格编码, 姓名, 联系电话, 角色, 登录账号")
    units = set(locator.unit_names("grid" if locator.has_grid else "community"))
    out, problems = [], []
    for line, row in enumerate(rows[1:], start=2):
        def cell(key: str, row: list[str] = row) -> str:
            i = col[key]
            return row[i].strip() if i is not None and i < len(row) else ""
        unit, name, role = cell("unit"), cell("name"), _role(cell("role"))
        if unit not in units:
            problems.append(f"line {line}: grid unit {unit!r} is not in the boundaries")
        elif not name:
            problems.append(f"line {line}: no name")
        elif role is None:
            problems.append(f"line {line}: role {cell('role')!r}? use 网格员, 社区干部 or 志愿者")
        else:
            out.append((unit, name, cell("phone"), role, cell("user") or None))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise EventInputError(f"{path.name}: {len(problems)} rows refused, nothing imported: "
                              + "; ".join(problems[:10]) + more)
    return pd.DataFrame(out, columns=["unit", "name", "phone", "role", "user"])


def import_staff(ws: Workspace, roster: pd.DataFrame, *, actor: str, source: str = "") -> int:
    """Replace the roster with ``roster`` (one transaction, audited); returns its size."""
    stamp = utc_now()
    with ws.connect() as conn, db.write_transaction(conn, timeout=ws.config.busy_timeout_s):
        conn.execute("DELETE FROM grid_staff")
        conn.executemany("INSERT INTO grid_staff (unit, name, phone, role, user, updated_at) "
                         "VALUES (?,?,?,?,?,?)",
                         [(*r, stamp) for r in roster[["unit", "name", "phone", "role",
                                                       "user"]].itertuples(index=False)])
        audit(conn, actor=actor, action="events.staff", target=source or "grid_staff",
              detail={"rows": len(roster), "units": int(roster["unit"].nunique())})
    return len(roster)


def staff(ws: Workspace, unit: str | None = None) -> pd.DataFrame:
    """The roster (optionally of one unit)."""
    sql = "SELECT unit, name, phone, role, user FROM grid_staff"
    params: tuple = ()
    if unit is not None:
        sql += " WHERE unit = ?"
        params = (unit,)
    with ws.connect() as conn:
        return pd.read_sql_query(sql + " ORDER BY unit, id", conn, params=params)


def units_of_user(ws: Workspace, user: str) -> list[str]:
    """The grid units a login works in (empty when it is nobody's login)."""
    with ws.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT DISTINCT unit FROM grid_staff WHERE user = ? ORDER BY unit", (user,))]
