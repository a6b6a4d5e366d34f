"""Open311 GeoReport v2 at ``/open311/v2``: other departments' systems report and follow
residents' requests (thin HTTP layer over :mod:`twin.events`).

- ``GET services.json``: the categories (``service_code`` = our category code).
- ``POST requests.json``: a new request (form-encoded or JSON: ``service_code``, ``lat`` and
  ``long`` or ``address_id`` = a building id, ``address_string``, ``description``,
  ``first_name``/``last_name``, ``phone``, optional ``priority``); answers
  ``[{"service_request_id": …}]``. Located, linked as a duplicate or assigned like any event.
- ``GET requests.json`` (``service_request_id``, ``service_code``, ``start_date``,
  ``end_date``, ``status``) and ``GET requests/{id}.json``: requests with their status.

Events hold personal data, so every call needs a department token (``Authorization: Bearer
TOKEN`` or Open311's ``api_key``) of role planner or gis; viewer tokens are refused. Answers
never carry the reporter's name or phone. Errors are Open311's ``[{"code", "description"}]``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pandas as pd
import tornado.web

from dashboards.events_state import shared_events
from twin.errors import AuthError, EventInputError, EventNotFoundError, InvalidTokenError
from twin.events.machine import OPEN_STATES
from twin.tokens import Tokens

__all__ = ["open311_patterns"]

_ROLES = ("planner", "gis")
_JSON = "application/json; charset=utf-8"


class _Open311(tornado.web.RequestHandler):
    def initialize(self, workspace: Any) -> None:
        self.workspace = workspace
        self.token = None
        self.form: dict[str, str] = {}

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", _JSON)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")

    async def prepare(self) -> None:
        self.form = self._form()
        header = self.request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip() if scheme.lower() == "bearer" else (
            self.form.get("api_key") or self.get_query_argument("api_key", None))
        try:
            self.token = await self._run(Tokens(self.workspace).authenticate, secret,
                                         path=self.request.path,
                                         address=self.request.remote_ip or "")
        except InvalidTokenError as exc:
            self.set_header("WWW-Authenticate", 'Bearer realm="citytwin"')
            self._fail(401, str(exc))
            return
        if self.token.role not in _ROLES:
            self._fail(403, f"token {self.token.name!r} has the role {self.token.role}; "
                       "requests hold personal data and need a planner or gis token "
                       "(`twin tokens WORKSPACE add NAME --role planner`)")

    def _form(self) -> dict[str, str]:
        if self.request.method != "POST":
            return {}
        kind = self.request.headers.get("Content-Type", "")
        if kind.startswith("application/json"):
            try:
                data = json.loads(self.request.body or b"{}")
            except (ValueError, UnicodeDecodeError):
                return {"__bad__": "the body is not JSON"}
            if not isinstance(data, dict):
                return {"__bad__": "the JSON body must be an object"}
            return {str(k): "" if v is None else str(v) for k, v in data.items()}
        return {k: self.get_body_argument(k, "") for k in self.request.body_arguments}

    @staticmethod
    async def _run(func: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: func(*args, **kwargs))

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps([{"code": status, "description": message}], ensure_ascii=False))

    def _send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", _JSON)
        self.finish(json.dumps([{"code": status_code, "description": self._reason}]))


class ServicesHandler(_Open311):
    def get(self) -> None:
        from twin.events.rules import categories

        self._send([{"service_code": c.code, "service_name": f"{c.zh} {c.en}",
                     "description": f"{c.zh} {c.en}", "metadata": False, "type": "realtime",
                     "keywords": ", ".join(c.synonyms), "group": "residents' requests"}
                    for c in categories(self.workspace.config).values()])


def _request(event: dict[str, Any], names: dict[str, str], tz: Any) -> dict[str, Any]:
    def local(text: str | None) -> str | None:
        if not text:
            return None
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment.astimezone(tz).isoformat()

    state = event["state"]
    notes = {"duplicate": f"duplicate of request {event['duplicate_of']} 重复诉求"}.get(
        state, state)
    return {
        "service_request_id": str(event["id"]),
        "status": "open" if state in OPEN_STATES else "closed",
        "status_notes": notes,
        "service_name": names.get(event["category"], event["category"]),
        "service_code": event["category"],
        "description": event["description"],
        "agency_responsible": event["unit"] or event["grid_code"],
        "service_notice": "",
        "requested_datetime": local(event["reported_at"]),
        "updated_datetime": local(event["updated_at"]),
        "expected_datetime": local(event["due_at"]),
        "address": event["address"],
        "address_id": event["building_id"] or "",
        "zipcode": "",
        "lat": event["lat"],
        "long": event["lng"],
        "media_url": "",
    }


class RequestsHandler(_Open311):
    async def get(self, request_id: str | None = None) -> None:
        try:
            found = await self._run(self._find, request_id)
        except (EventInputError, ValueError) as exc:
            self._fail(400, str(exc))
            return
        except EventNotFoundError as exc:
            self._fail(404, str(exc))
            return
        self._send(found)

    def _find(self, request_id: str | None) -> list[dict[str, Any]]:
        events = shared_events(self.workspace)
        names = {c.code: f"{c.zh} {c.en}" for c in events.categories.values()}
        if request_id is not None:
            if not request_id.isdigit():
                raise EventNotFoundError(f"no request {request_id!r}; ids are numbers")
            return [_request(events.get(int(request_id)).to_dict(), names, events.tz)]
        ids = self.get_query_argument("service_request_id", "")
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        if not all(i.isdigit() for i in wanted):
            raise EventInputError("service_request_id takes comma-separated numbers")
        bounds = []
        for arg in ("start_date", "end_date"):
            value = self.get_query_argument(arg, "")
            try:
                stamp = pd.Timestamp(value) if value else None
            except ValueError:
                raise EventInputError(f"{arg} {value!r} is not a date and time (W3C, e.g. "
                                      "2026-04-30T08:00:00+08:00)") from None
            if stamp is not None and stamp.tzinfo is None:
                stamp = stamp.tz_localize(events.tz)
            bounds.append(stamp)
        status = self.get_query_argument("status", "") or None
        if status not in (None, "open", "closed"):
            raise EventInputError("status is open or closed")
        if not wanted and bounds[0] is None:  # Open311's default window: the last 90 days
            bounds[0] = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=90)
        rows = events.search(ids=[int(i) for i in wanted] or None,
                             category=self.get_query_argument("service_code", "") or None,
                             since=bounds[0], until=bounds[1], status=status, limit=1000)
        return [_request(r, names, events.tz) for r in rows]

    async def post(self, request_id: str | None = None) -> None:
        if request_id is not None:
            self._fail(405, "POST to requests.json, not to one request")
            return
        if "__bad__" in self.form:
            self._fail(400, self.form["__bad__"])
            return
        try:
            result = await self._run(self._create)
        except (EventInputError, AuthError) as exc:
            self._fail(400, str(exc))
            return
        self._send(result, 201)

    def _create(self) -> list[dict[str, Any]]:
        from twin.events.intake import submit

        events = shared_events(self.workspace)
        form = self.form
        reporter = " ".join(p for p in (form.get("last_name", ""), form.get("first_name", ""))
                            if p).strip()
        event = submit(events, {
            "category": form.get("service_code", ""), "priority": form.get("priority", ""),
            "address": form.get("address_string", ""), "building_id": form.get("address_id", ""),
            "lng": form.get("long", ""), "lat": form.get("lat", ""),
            "description": form.get("description", ""), "reporter": reporter,
            "phone": form.get("phone", "")}, channel="department",
            actor=f"token:{self.token.name}", source="open311")
        notice = (f"duplicate of request {event.duplicate_of} 重复诉求" if event.duplicate_of
                  else f"assigned to grid unit {event.unit} 已派至网格" if event.unit else "")
        return [{"service_request_id": str(event.id), "service_notice": notice,
                 "account_id": ""}]


def open311_patterns(workspace: Any) -> list[tuple[str, type, dict[str, Any]]]:
    """The Tornado routes of ``/open311/v2`` for ``pn.serve(extra_patterns=…)``."""
    kwargs = {"workspace": workspace}
    return [
        (r"/open311/v2/services\.json", ServicesHandler, kwargs),
        (r"/open311/v2/requests\.json", RequestsHandler, kwargs),
        (r"/open311/v2/requests/([0-9A-Za-z_-]+)\.json", RequestsHandler, kwargs),
    ]
