"""OGC API Features at ``/ogc``, read-only, for other departments' GIS (thin HTTP layer).

Tornado handlers served by the same server as the pages (``pn.serve(extra_patterns=…)``).
Every request needs ``Authorization: Bearer TOKEN`` (:mod:`twin.tokens`), is audited, and gets
JSON: the landing page, ``/conformance``, ``/api`` (an OpenAPI 3.0 description),
``/collections``, ``/collections/{id}``, ``/collections/{id}/items`` and
``/collections/{id}/items/{featureId}``. The work is in :mod:`twin.features`, run off the
event loop so that the dashboards keep answering while a large collection is built.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import tornado.web

from twin.errors import AuthError, FeaturesError, InvalidTokenError
from twin.features import (
    CRSS,
    MAX_LIMIT,
    collections,
    feature_collection,
    get_collection,
    items,
)
from twin.tokens import Tokens

__all__ = ["CONFORMANCE", "TokenHandler", "ogc_patterns"]

#: The conformance classes implemented (and no others).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
_JSON = "application/json"
_GEOJSON = "application/geo+json"


class TokenHandler(tornado.web.RequestHandler):
    """Token check, audit, JSON answers and errors without tracebacks."""

    def initialize(self, workspace: Any) -> None:
        self.workspace = workspace
        self.token = None

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", f"{_JSON}; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")

    async def prepare(self) -> None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        path = self.request.path
        try:
            self.token = await self._run(
                Tokens(self.workspace).authenticate,
                secret.strip() if scheme.lower() == "bearer" else None,
                path=path, address=self.request.remote_ip or "")
        except InvalidTokenError as exc:
            self.set_header("WWW-Authenticate", 'Bearer realm="citytwin"')
            self._fail(401, "unauthorized", str(exc))

    @staticmethod
    async def _run(func: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: func(*args, **kwargs))

    @property
    def base(self) -> str:
        return f"{self.request.protocol}://{self.request.host}/ogc"

    def _fail(self, status: int, code: str, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"code": code, "description": message}, ensure_ascii=False))

    def _send(self, data: dict[str, Any], content_type: str = _JSON) -> None:
        self.set_header("Content-Type", f"{content_type}; charset=utf-8")
        self.finish(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    async def _answer(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` off the loop; domain errors become 400/403/404 answers (None)."""
        try:
            return await self._run(func, *args, **kwargs)
        except FeaturesError as exc:
            self._fail(404 if exc.not_found else 400,
                       "not_found" if exc.not_found else "bad_request", str(exc))
        except AuthError as exc:
            self._fail(403, "forbidden", str(exc))
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Never a traceback: the status and a generic line.
        self.set_header("Content-Type", f"{_JSON}; charset=utf-8")
        self.finish(json.dumps({"code": "error", "description": self._reason}))

    def _int(self, name: str, default: int) -> int:
        value = self.get_query_argument(name, None)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise FeaturesError(f"{name} must be a whole number, got {value!r}") from None


class LandingHandler(TokenHandler):
    def get(self) -> None:
        b = self.base
        self._send({
            "title": f"citytwin · {self.workspace.config.display_name('zh')} · "
                     f"{self.workspace.config.display_name('en')}",
            "description": "城市数字孪生 OGC API Features（只读）· the fused city picture, "
                           "read-only",
            "links": [
                {"href": f"{b}/", "rel": "self", "type": _JSON, "title": "this document"},
                {"href": f"{b}/api", "rel": "service-desc",
                 "type": "application/vnd.oai.openapi+json;version=3.0",
                 "title": "the API definition"},
                {"href": f"{b}/conformance", "rel": "conformance", "type": _JSON,
                 "title": "conformance classes"},
                {"href": f"{b}/collections", "rel": "data", "type": _JSON,
                 "title": "the collections"}]})


class ConformanceHandler(TokenHandler):
    def get(self) -> None:
        self._send({"conformsTo": CONFORMANCE})


class ApiHandler(TokenHandler):
    def get(self) -> None:
        param = {"in": "query", "required": False, "schema": {"type": "string"}}
        self._send({
            "openapi": "3.0.3",
            "info": {"title": "citytwin OGC API Features", "version": "1.0"},
            "servers": [{"url": self.base}],
            "components": {"securitySchemes": {"bearer": {"type": "http",
                                                          "scheme": "bearer"}}},
            "security": [{"bearer": []}],
            "paths": {
                "/": {"get": {"summary": "landing page", "responses": {"200": {
                    "description": "links"}}}},
                "/conformance": {"get": {"summary": "conformance classes", "responses": {
                    "200": {"description": "conformsTo"}}}},
                "/collections": {"get": {"summary": "the collections", "responses": {
                    "200": {"description": "collections"}}}},
                "/collections/{collectionId}": {"get": {
                    "summary": "one collection",
                    "parameters": [{"name": "collectionId", "in": "path", "required": True,
                                    "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "collection"}}}},
                "/collections/{collectionId}/items": {"get": {
                    "summary": "features, paged",
                    "parameters": [
                        {"name": "collectionId", "in": "path", "required": True,
                         "schema": {"type": "string"}},
                        {"name": "limit", **param,
                         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                    "default": 10}},
                        {"name": "offset", **param, "schema": {"type": "integer",
                                                               "minimum": 0}},
                        {"name": "bbox", **param, "style": "form", "explode": False,
                         "schema": {"type": "array", "items": {"type": "number"}}},
                        {"name": "bbox-crs", **param}, {"name": "crs", **param},
                        {"name": "datetime", **param}],
                    "responses": {"200": {"description": "GeoJSON FeatureCollection"}}}},
                "/collections/{collectionId}/items/{featureId}": {"get": {
                    "summary": "one feature",
                    "parameters": [
                        {"name": "collectionId", "in": "path", "required": True,
                         "schema": {"type": "string"}},
                        {"name": "featureId", "in": "path", "required": True,
                         "schema": {"type": "string"}},
                        {"name": "crs", **param}],
                    "responses": {"200": {"description": "GeoJSON Feature"}}}}}},
            "application/vnd.oai.openapi+json;version=3.0")


class CollectionsHandler(TokenHandler):
    async def get(self) -> None:
        found = await self._answer(collections, self.workspace, self.token.role)
        if found is None:
            return
        self._send({"links": [{"href": f"{self.base}/collections", "rel": "self",
                               "type": _JSON, "title": "this document"}],
                    "crs": list(CRSS),
                    "collections": [c.to_dict(self.base) for c in found]})


class CollectionHandler(TokenHandler):
    async def get(self, collection_id: str) -> None:
        found = await self._answer(get_collection, self.workspace,
                                   urllib.parse.unquote(collection_id), self.token.role)
        if found is not None:
            self._send(found.to_dict(self.base))


class ItemsHandler(TokenHandler):
    async def get(self, collection_id: str, feature_id: str | None = None) -> None:
        collection_id = urllib.parse.unquote(collection_id)
        try:
            limit, offset = self._int("limit", 10), self._int("offset", 0)
            bbox_text = self.get_query_argument("bbox", None)
            bbox = [float(v) for v in bbox_text.split(",")] if bbox_text else None
        except ValueError:
            self._fail(400, "bad_request", "bbox takes comma-separated numbers: "
                       "minx,miny,maxx,maxy")
            return
        except FeaturesError as exc:
            self._fail(400, "bad_request", str(exc))
            return
        page = await self._answer(
            items, self.workspace, collection_id, role=self.token.role, bbox=bbox,
            bbox_crs=self.get_query_argument("bbox-crs", None),
            limit=min(limit, MAX_LIMIT) if limit > 0 else limit, offset=offset,
            datetime=self.get_query_argument("datetime", None),
            crs=self.get_query_argument("crs", None),
            feature_id=urllib.parse.unquote(feature_id) if feature_id else None)
        if page is None:
            return
        data = await self._run(feature_collection, page)
        self.set_header("Content-Crs", f"<{page.crs}>")
        if feature_id is not None:
            feature = data["features"][0]
            feature["links"] = [{"href": self.request.full_url(), "rel": "self",
                                 "type": _GEOJSON}]
            self._send(feature, _GEOJSON)
            return
        data["links"] = self._links(page)
        self._send(data, _GEOJSON)

    def _links(self, page: Any) -> list[dict[str, Any]]:
        base = f"{self.request.protocol}://{self.request.host}{self.request.path}"
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}

        def href(offset: int) -> str:
            return base + "?" + urllib.parse.urlencode({**args, "offset": offset,
                                                        "limit": page.limit})

        links = [{"href": href(page.offset), "rel": "self", "type": _GEOJSON,
                  "title": "this page"}]
        if page.next_offset is not None:
            links.append({"href": href(page.next_offset), "rel": "next", "type": _GEOJSON,
                          "title": "next page"})
        if page.offset > 0:
            links.append({"href": href(max(0, page.offset - page.limit)), "rel": "prev",
                          "type": _GEOJSON, "title": "previous page"})
        return links


def ogc_patterns(workspace: Any) -> list[tuple[str, type, dict[str, Any]]]:
    """The Tornado routes of ``/ogc`` for ``pn.serve(extra_patterns=…)``."""
    kwargs = {"workspace": workspace}
    name = r"([A-Za-z0-9_.%-]+)"
    return [
        (r"/ogc/?", LandingHandler, kwargs),
        (r"/ogc/conformance/?", ConformanceHandler, kwargs),
        (r"/ogc/api/?", ApiHandler, kwargs),
        (r"/ogc/collections/?", CollectionsHandler, kwargs),
        (rf"/ogc/collections/{name}/?", CollectionHandler, kwargs),
        (rf"/ogc/collections/{name}/items/?", ItemsHandler, kwargs),
        (rf"/ogc/collections/{name}/items/{name}/?", ItemsHandler, kwargs),
    ]

