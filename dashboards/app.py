"""The dashboards server: pages and auth only (the work is in state, views and twin).

- One Panel server with pages (``/cockpit``, ``/detail``, ``/zones``, ``/catalog``), served by
  :func:`serve` (``twin serve``).
- Login: Panel's basic-auth flow with our own provider: passwords are checked by
  :meth:`twin.users.Users.authenticate` (scrypt hashes in the workspace database), throttled
  (:mod:`twin.throttle`), behind a CSRF token; the login and logout pages are our own HTML
  (nothing from a CDN). A login opens a server-side session (:mod:`twin.sessions`) that
  every request and every open page checks, and that logout revokes.
- A page a role may not open answers 403 before anything is built (:func:`authorize`);
  every page also loads the user afresh and calls :func:`twin.users.require` itself.
- Offline: resources are served by this server (``BOKEH_RESOURCES=server``, Panel's
  ``resources="server"``); pages are plain Panel layouts (no template) and load nothing external.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import html
import math
import os
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import panel as pn
import tornado.web
from panel.auth import BasicAuthProvider, BasicLoginHandler, LogoutHandler
from panel.io.resources import LOCAL_DIST
from tornado.websocket import WebSocketHandler

from dashboards.cockpit import Cockpit
from dashboards.labels import label
from dashboards.security import (
    SESSION_COOKIE,
    SecurityHeaders,
    harden_routes,
    request_session,
    request_user,
)
from dashboards.security import cookie_secret as workspace_cookie_secret
from dashboards.situation import shared_situation
from dashboards.state import CockpitState
from twin.errors import TwinError
from twin.sessions import Sessions
from twin.throttle import LoginThrottle
from twin.users import AuthError, UnknownUserError, User, Users, can, require

__all__ = ["LOGIN_HTML", "PAGE_ACTIONS", "REFUSED_HTML", "TwinAuthProvider", "authorize",
           "can_user", "current_user", "local_path", "make_pages", "serve"]

#: Cookie lifetime in days (a wall screen logs in once).
SESSION_DAYS = 30

LOGIN_HTML = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>citytwin 登录 Login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { background:#0e1320; color:#e8eaf0; font-family: "Noto Sans CJK SC", "Microsoft YaHei",
  system-ui, sans-serif; display:flex; align-items:center; justify-content:center;
  height:100vh; margin:0; }
form { background:#1b2233; padding:2.5em 3em; border-radius:12px; min-width:320px; }
h1 { font-size:1.4em; margin:0 0 1em 0; }
label { display:block; margin:.8em 0 .3em; color:#aab3c5; }
input { width:100%; padding:.6em; font-size:1em; border-radius:6px; border:1px solid #33405a;
  background:#0e1320; color:#e8eaf0; box-sizing:border-box; }
button { margin-top:1.4em; width:100%; padding:.7em; font-size:1em; border:0; border-radius:6px;
  background:#4f8cff; color:white; cursor:pointer; }
.ct-login-error { color:#ff5a5f; margin-top:1em; min-height:1.2em; }
</style></head>
<body><form class="ct-login" action="{{ login_endpoint }}" method="post">
<h1>citytwin 数字驾驶舱 · Cockpit</h1>
<label for="username">用户名 User name</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">密码 Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="_xsrf" value="{{ xsrf_token }}">
<button type="submit" class="ct-login-submit">登录 Log in</button>
<div class="ct-login-error">{{ errormessage }}</div>
</form></body></html>
"""

#: GET /logout: a confirmation whose button posts the CSRF token (a link or an image on
#: another site cannot log anyone out).
LOGOUT_CONFIRM_HTML = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>citytwin 退出 Log out</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { background:#0e1320; color:#e8eaf0; font-family: "Noto Sans CJK SC",
"Microsoft YaHei", system-ui, sans-serif; display:flex; align-items:center;
justify-content:center; height:100vh; margin:0; }
form { background:#1b2233; padding:2.5em 3em; border-radius:12px; min-width:320px; }
button { margin-top:1.2em; width:100%; padding:.7em; font-size:1em; border:0;
border-radius:6px; background:#4f8cff; color:white; cursor:pointer; }
a { color:#9fd3ff; }</style></head>
<body><form class="ct-logout" action="/logout" method="post">
<p>退出登录？ · Log out{{ user_suffix }}?</p>
<input type="hidden" name="_xsrf" value="{{ xsrf_token }}">
<button type="submit" class="ct-logout-submit" autofocus>退出 Log out</button>
<p><a href="/cockpit">返回驾驶舱 Back to the cockpit</a></p>
</form></body></html>
"""

LOGOUT_HTML = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>citytwin</title>
<style>body { background:#0e1320; color:#e8eaf0; font-family: system-ui, sans-serif;
display:flex; align-items:center; justify-content:center; height:100vh; margin:0; }
a { color:#9fd3ff; }</style></head>
<body><p>已退出 Logged out · <a href="{{ LOGIN_ENDPOINT }}">登录 Log in</a></p></body></html>
"""


#: A refusal answered over HTTP (403) before any page is built; ``{message}`` is escaped.
REFUSED_HTML = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>citytwin {title}</title>
<style>body {{ background:#0e1320; color:#e8eaf0; font-family: "Noto Sans CJK SC",
"Microsoft YaHei", system-ui, sans-serif; display:flex; align-items:center;
justify-content:center; height:100vh; margin:0; }} main {{ background:#1b2233;
padding:2.5em 3em; border-radius:12px; max-width:40em; }} a {{ color:#9fd3ff; }}
h1 {{ font-size:1.4em; }} th, td {{ text-align:left; padding:.2em 1.2em .2em 0; }}
</style></head>
<body><main class="ct-refused"><h1>无权访问 · Not allowed ({title})</h1><p>{message}</p>
<p><a href="/cockpit">驾驶舱 Cockpit</a> · <a href="{login}">换个账号登录 Log in as someone
else</a></p></main></body></html>
"""


def local_path(target: str | None) -> str | None:
    """``target`` if it is a path on this server, else None.

    The login follows the ``next_url`` cookie, which anyone on the path can set; a URL with
    a scheme or host, a protocol-relative ``//host``, a backslash (some browsers read it as
    ``/``) or a control character would send a fresh login elsewhere.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


def _client(handler: Any) -> tuple[str, str]:
    return handler.request.remote_ip or "", handler.request.headers.get("User-Agent", "")


class TwinAuthProvider(BasicAuthProvider):
    """Panel's login/logout flow with passwords checked against the workspace's users.

    A login opens a server-side session (:class:`twin.sessions.Sessions`) whose id travels
    in its own signed cookie; every request, the websocket included, is someone's only
    while that session is open (:func:`dashboards.security.request_user`). The login form
    carries a CSRF token (Tornado's ``_xsrf`` double-submit cookie). ``secure`` marks every
    cookie ``Secure`` (HTTPS only).
    """

    def __init__(self, workspace: Any, *, secure: bool = False, **kwargs: Any) -> None:
        self.workspace = workspace  # before super(): Bokeh validates the handlers there
        self.secure = secure
        self._confirm_template = jinja2.Template(LOGOUT_CONFIRM_HTML, autoescape=True)
        super().__init__(**kwargs)
        self._login_template = jinja2.Template(LOGIN_HTML, autoescape=True)
        self._logout_template = jinja2.Template(LOGOUT_HTML, autoescape=True)

    @property
    def get_user(self) -> Callable[[Any], str | None]:
        workspace = self.workspace

        def get_user(handler: Any) -> str | None:
            user = request_user(handler, workspace)
            if user and isinstance(handler, WebSocketHandler):
                pn.state._active_users[user] += 1  # as Panel counts them (it uncounts on close)
            return user

        return get_user

    @property
    def login_handler(self) -> type[BasicLoginHandler]:
        workspace, endpoint, template = (self.workspace, self._login_endpoint,
                                         self._login_template)
        secure = self.secure

        class TwinLoginHandler(BasicLoginHandler):
            _login_endpoint = endpoint
            _login_template = template

            def get(self) -> None:
                next_url = local_path(self.get_argument("next", "") or None)
                if next_url:
                    self.set_cookie("next_url", next_url, httponly=True, samesite="Lax",
                                    secure=secure)
                self.set_header("Cache-Control", "no-store")
                self.write(self._login_template.render(
                    login_endpoint=self._login_endpoint,
                    errormessage=self.get_argument("error", ""),
                    xsrf_token=self.xsrf_token.decode("ascii")))

            def _validate(self, username: str, password: str) -> bool:
                try:
                    Users(workspace).authenticate(username, password,
                                                  address=self.request.remote_ip or "")
                except AuthError:
                    return False
                return True

            def set_secure_cookie(self, name: str, value: Any, **kwargs: Any) -> None:
                # Not sent along with another site's requests (login CSRF, cross-site posts).
                kwargs.setdefault("samesite", "Lax")
                kwargs.setdefault("httponly", True)
                if secure:
                    kwargs.setdefault("secure", True)
                super().set_secure_cookie(name, value, **kwargs)

            def check_xsrf_cookie(self) -> None:
                # A form posted from another site, or a login page from before the cookies
                # were cleared: say so, log nothing alarming, log nobody in.
                _check_form_token(self, super().check_xsrf_cookie,
                                  "登录表单无法验证，请重新打开登录页 · the login form could not "
                                  "be verified; open the login page again", endpoint)

            def post(self) -> None:
                self.check_xsrf_cookie()
                if self._finished:  # refused: no valid CSRF token
                    return
                username = self.get_argument("username", "")
                address, agent = _client(self)
                throttle = LoginThrottle(workspace)
                wait = throttle.wait_s(username, address)
                if wait > 0:  # not even checked: the same answer whether the name exists
                    throttle.refused(username, address, wait)
                    seconds = math.ceil(wait)
                    self.redirect(f"{endpoint}?error=" + urllib.parse.quote(
                        f"登录失败次数过多，请 {seconds} 秒后再试 · too many failed logins; "
                        f"try again in {seconds} s"))
                    return
                if self._validate(username, self.get_argument("password", "")):
                    throttle.succeeded(username)
                    sessions = Sessions(workspace)
                    session_id = sessions.open(username, address=address, user_agent=agent)
                    self.set_secure_cookie(SESSION_COOKIE, session_id,
                                           expires_days=sessions.days,
                                           path=pn.config.cookie_path)
                    self.set_current_user(username)
                    # "/" is Panel's page index: the people logging in want the cockpit.
                    target = local_path(self.get_cookie("next_url", None))
                    self.clear_cookie("next_url")
                    self.redirect(target if target and target != "/" else "/cockpit")
                else:  # generic message; the name and password are not echoed back
                    throttle.failed(username, address)
                    self.redirect(f"{endpoint}?error=" + "wrong%20user%20name%20or%20password"
                                  "%20%E7%94%A8%E6%88%B7%E5%90%8D%E6%88%96%E5%AF%86%E7%A0%81"
                                  "%E9%94%99%E8%AF%AF")

        return TwinLoginHandler

    @property
    def logout_handler(self) -> type[LogoutHandler]:
        template, endpoint, workspace = (self._logout_template, self._login_endpoint,
                                         self.workspace)
        confirm = self._confirm_template

        class TwinLogoutHandler(LogoutHandler):
            _logout_template = template
            _login_endpoint = endpoint

            def get(self) -> None:
                # Logging out changes state: a GET only asks, the button posts the token.
                self.set_header("Cache-Control", "no-store")
                user = request_user(self, workspace)
                if user is None:  # nothing to end: say so (and clear what is left)
                    self.clear_cookie(SESSION_COOKIE, path=pn.config.cookie_path)
                    super().get()
                    return
                self.write(confirm.render(user_suffix=f" ({user})",
                                          xsrf_token=self.xsrf_token.decode("ascii")))

            def check_xsrf_cookie(self) -> None:
                _check_form_token(self, super().check_xsrf_cookie,
                                  "退出请求无法验证，请在本站的退出页面确认 · the log-out request "
                                  "could not be verified; confirm it on this server's log-out "
                                  "page", "/logout")

            def post(self) -> None:
                self.check_xsrf_cookie()
                if self._finished:  # refused: no valid CSRF token, nothing ended
                    return
                # The session ends on the server: a copy of the cookie opens nothing after.
                days = float(workspace.config["security"]["session_days"])
                Sessions(workspace).end(request_session(self, days),
                                        address=self.request.remote_ip or "")
                self.clear_cookie(SESSION_COOKIE, path=pn.config.cookie_path)
                self.set_header("Cache-Control", "no-store")
                super().get()

        return TwinLogoutHandler


def _check_form_token(handler: tornado.web.RequestHandler, check: Callable[[], None],
                      message: str, retry: str) -> None:
    """Tornado's CSRF check of a posted form; a failure answers 403 with a page saying
    ``message`` (and a link to ``retry``) instead of Tornado's bare error."""
    try:
        check()
    except tornado.web.HTTPError:
        handler.set_status(403)
        handler.finish(REFUSED_HTML.format(title="403", message=html.escape(message),
                                           login=retry))


def current_user(workspace: Any, name: str | None) -> User | None:
    """The logged-in user, loaded afresh from the workspace (None when unknown)."""
    if not name:
        return None
    try:
        return Users(workspace).get(name)
    except UnknownUserError:
        return None


#: The page chrome: a slim header bar, sized with the screen like the cockpit.
PAGE_CSS = """
:host { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei",
  "PingFang SC", system-ui, sans-serif; color: #e8eaf0; }
.ct-header { display: flex; align-items: baseline; gap: 1.2vw; height: 4.2vh;
  padding: 0 1vw; background: #16203a; border-bottom: 1px solid #2a3348;
  box-sizing: border-box; align-items: center; }
.ct-header-title { font-size: clamp(18px, 1.25vw, 56px); font-weight: 700; }
.ct-user { font-size: clamp(13px, 0.75vw, 32px); color: #aab3c5; }
.ct-user a { color: #9fd3ff; }
"""
#: The whole document: dark from the first paint (no white flash on a wall screen).
BODY_CSS = "html, body { background: #0e1320; margin: 0; overflow: hidden; }"


#: Panel's page with a viewport tag, for pages made for phones (Panel puts "{% extends base %}"
#: in front of a template given as text).
PHONE_TEMPLATE = ('{% block postamble %}<meta name="viewport" '
                  'content="width=device-width, initial-scale=1">{% endblock %}')


def _page(title: str, header: str, main: list[Any]) -> Any:
    """A page: the header bar and ``main`` (plain Panel layout; no template to load)."""
    bar = pn.pane.HTML(f'<div class="ct-header"><span class="ct-header-title">'
                       f"{html.escape(title)}</span>{header}</div>", stylesheets=[PAGE_CSS],
                       sizing_mode="stretch_width", margin=0, css_classes=["ct-header-pane"])
    return pn.Column(bar, *main, sizing_mode="stretch_both", margin=0,
                     styles={"background": "#0e1320"})


def _refusal(message: str, lang: str) -> Any:
    return _page("citytwin", "", [pn.pane.HTML(
        f'<div class="ct-status ct-refused"><h2>{label("refused", lang)}</h2>'
        f"<p>{html.escape(message)}</p><p><a href=\"/logout\">{label('logout', lang)}</a>"
        "</p></div>", stylesheets=[PAGE_CSS])])


def _local_resources() -> None:
    """Make this session's stylesheets come from our server, whichever process builds it.

    Panel points component stylesheets at its own server only for a session whose page
    that process rendered (``server_html_page_for_session`` sets the document's
    ``dist_url``); with ``--num-procs`` the websocket may reach another process, which then
    builds the document itself and would link the CDN (seen: 1 page load in 6). Setting
    the template variable before anything is rendered keeps every link local.
    """
    doc = pn.state.curdoc
    if doc is not None:
        doc._template_variables.setdefault("dist_url", "/" + LOCAL_DIST)


def _watch_session(workspace: Any) -> None:
    """Close this page once its login session is revoked (checked every
    ``security.session_check_s``): the browser is sent to the login, and the server drops
    the page's websocket a few seconds later whatever the browser does."""
    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None)
    request = getattr(context, "request", None)
    if doc is None or request is None:
        return
    days = float(workspace.config["security"]["session_days"])
    raw = (request.cookies or {}).get(SESSION_COOKIE)
    session_id = tornado.web.decode_signed_value(_SERVER["secret"], SESSION_COOKIE, raw,
                                                 max_age_days=days) if raw else None
    location = pn.state.location
    sessions = Sessions(workspace)
    period_ms = int(float(workspace.config["security"]["session_check_s"]) * 1000)

    def drop() -> None:
        server_session = getattr(context, "_session", None)
        for connection in list(getattr(server_session, "_subscribed_connections", ())):
            with contextlib.suppress(Exception):
                connection._socket.close(4001, "session revoked")

    def check() -> None:
        if sessions.check(session_id.decode("ascii", "replace") if session_id else None):
            return
        callback.stop()
        if location is not None:
            location.param.update(reload=True, pathname="/login", search="", hash="")
        pn.state.add_periodic_callback(drop, period=3000, count=1)

    callback = pn.state.add_periodic_callback(check, period=period_ms)


def cockpit_page(workspace: Any, lang: str, action: str = "view_cockpit") -> Any:
    """The cockpit for the current request's user (``action`` checked here, on the server).

    ``view_cockpit`` is every role's cockpit (viewers see aggregated cases);
    ``view_fine_cases`` is the case-detail page for planners, GIS staff and administrators.
    """
    _local_resources()
    args = pn.state.session_args if pn.state.curdoc else {}
    kiosk = args.get("kiosk", [b"0"])[0] not in (b"0", b"", b"false")
    page_lang = args.get("lang", [lang.encode()])[0].decode()
    if page_lang not in ("zh", "en"):
        page_lang = lang
    user = current_user(workspace, pn.state.user)
    try:
        require(user, action)
        state = CockpitState(workspace, shared_situation(workspace.root), role=user.role,
                             lang=page_lang)
    except (AuthError, TwinError) as exc:
        return _refusal(str(exc), page_lang)
    view = Cockpit(state=state, kiosk=kiosk)
    pn.state.onload(view.start_callbacks)
    _watch_session(workspace)
    pn.state.on_session_destroyed(_release_memory)
    title = f"{workspace.config.display_name(page_lang)} · {label('title', page_lang)}"
    editor = (f'<a href="/zones" class="ct-to-zones">{label("zone_editor", page_lang)}</a> · '
              if can(user.role, "edit_zones") else "")
    editor += (f'<a href="/events" class="ct-to-events">{label("events_page", page_lang)}</a> · '
               if can(user.role, "dispatch_events") else "")
    editor += (f'<a href="/tasks" class="ct-to-tasks">{label("tasks", page_lang)}</a> · '
               if user.role == "grid_worker" else "")
    header = "" if kiosk else (
        f'<span class="ct-user">{html.escape(user.name)} ({html.escape(user.role)}) · '
        f'{editor}<a href="/logout">{label("logout", page_lang)}</a></span>')
    # A plain layout rather than a template: panel-material-ui's Page cost 3-6 s of the
    # first render in software WebGL (measured), for a header bar.
    if pn.state.curdoc is not None:
        pn.state.curdoc.title = title
    return _page(title, header, [view])


def _session(workspace: Any, lang: str) -> tuple[str, User | None]:
    """This session's language (``?lang=``, else ``lang``) and its user, loaded afresh."""
    _local_resources()
    args = pn.state.session_args if pn.state.curdoc else {}
    page_lang = args.get("lang", [lang.encode()])[0].decode()
    if page_lang not in ("zh", "en"):
        page_lang = lang
    _watch_session(workspace)
    return page_lang, current_user(workspace, pn.state.user)


def _tool_page(workspace: Any, user: User, lang: str, title_key: str, view: Any) -> Any:
    """A working page (zone editor, catalog): its title, the user and links back, the view."""
    title = f"{workspace.config.display_name(lang)} · {label(title_key, lang)}"
    header = (f'<span class="ct-user">{html.escape(user.name)} ({html.escape(user.role)}) · '
              f'<a href="/cockpit">{label("title", lang)}</a> · '
              f'<a href="/logout">{label("logout", lang)}</a></span>')
    if pn.state.curdoc is not None:
        pn.state.curdoc.title = title
    return _page(title, header, [view])


def zones_page(workspace: Any, lang: str) -> Any:
    """The planners' zone editor (``edit_zones``: planners and administrators), checked here
    on the server before anything is built."""
    from dashboards.zones import ZoneEditor
    from dashboards.zones_state import ZoneEditorState

    page_lang, user = _session(workspace, lang)
    try:
        require(user, "edit_zones")
        state = ZoneEditorState(workspace, shared_situation(workspace.root), user=user,
                                lang=page_lang)
    except (AuthError, TwinError) as exc:
        return _refusal(str(exc), page_lang)
    view = ZoneEditor(state=state)
    pn.state.onload(view.start_callbacks)
    pn.state.on_session_destroyed(_release_memory)
    return _tool_page(workspace, user, page_lang, "zone_editor", view)


def catalog_page(workspace: Any, lang: str) -> Any:
    """The GIS staff's layer catalog (``ingest_layers``: gis and admin), checked here on the
    server before anything is built."""
    from dashboards.catalog import CatalogPage
    from dashboards.catalog_http import make_ticket
    from dashboards.catalog_state import CatalogState

    page_lang, user = _session(workspace, lang)
    try:
        require(user, "ingest_layers")
        state = CatalogState(workspace, user=user, lang=page_lang)
    except (AuthError, TwinError) as exc:
        return _refusal(str(exc), page_lang)
    if pn.state.curdoc is not None:
        # The preview map is a DeckGL pane added after the page loaded: its deck.gl bundle
        # must be named now, or the browser has nothing to draw it with.
        pn.extension("deckgl")
    view = CatalogPage(state, ticket=make_ticket(_SERVER["secret"], user.name))
    pn.state.on_session_destroyed(_release_memory)
    return _tool_page(workspace, user, page_lang, "catalog", view)


def _escalate_periodically(workspace: Any, io_loop: Any) -> None:
    """Escalate overdue events every ``events.escalation_check_minutes``, off the loop.

    Each serving process runs it; the escalation is one transaction and moves an event's due
    time on, so two processes never escalate the same event twice.
    """
    import logging

    from tornado.ioloop import PeriodicCallback

    from twin.events.store import Events

    def work() -> None:
        try:
            Events(workspace).escalate_overdue()
        except TwinError as exc:  # busy database, no boundaries yet: try again next time
            logging.getLogger(__name__).warning("escalating overdue events: %s", exc)

    def tick() -> None:
        threading.Thread(target=work, name="citytwin-escalate", daemon=True).start()

    period_ms = float(workspace.config["events"]["escalation_check_minutes"]) * 60_000
    PeriodicCallback(tick, period_ms).start()
    io_loop.add_callback(tick)


def _events_view(workspace: Any, lang: str, action: str, page: str,
                 extensions: tuple[str, ...]) -> tuple[str, User | None, Any]:
    """This session's language, user and events view (``page``: events or tasks), or the
    refusal page as the view when the user may not take ``action``."""
    from dashboards import events as views
    from dashboards import events_state as states

    page_lang, user = _session(workspace, lang)
    state_cls, view_cls = {"events": (states.EventsState, views.EventsPage),
                           "tasks": (states.TasksState, views.TasksPage)}[page]
    try:
        require(user, action)
        state = state_cls(workspace, user=user, lang=page_lang)
    except (AuthError, TwinError) as exc:
        return page_lang, None, _refusal(str(exc), page_lang)
    if pn.state.curdoc is not None:
        pn.extension(*extensions)
    view = view_cls(state=state)
    pn.state.onload(view.start_callbacks)
    pn.state.on_session_destroyed(_release_memory)
    return page_lang, user, view


def events_page(workspace: Any, lang: str) -> Any:
    """The dispatchers' events page (``dispatch_events``: dispatchers, planners, admins)."""
    page_lang, user, view = _events_view(workspace, lang, "dispatch_events", "events",
                                         ("deckgl", "tabulator"))
    if user is None:
        return view
    return _tool_page(workspace, user, page_lang, "events_page", view)


def tasks_page(workspace: Any, lang: str) -> Any:
    """The grid staff's task list (``handle_events``), made for a phone."""
    page_lang, user, view = _events_view(workspace, lang, "handle_events", "tasks",
                                         ("deckgl",))
    if user is None:
        return view
    title = f"{label('tasks', page_lang)} · {workspace.config.display_name(page_lang)}"
    if pn.state.curdoc is not None:
        pn.state.curdoc.title = title
        # A phone page: lay it out at the device's width (Panel's page has no viewport tag).
        pn.state.curdoc.template = PHONE_TEMPLATE
    header = (f'<span class="ct-user">{html.escape(user.name)} · '
              f'<a href="/logout">{label("logout", page_lang)}</a></span>')
    return _page(label("tasks", page_lang), header, [view])


#: The running server's cookie secret, which also signs the catalog's upload tickets.
_SERVER: dict[str, str] = {"secret": ""}
#: Descriptors of the directories under tmp/ this server claims (kept open while it runs).
_CLAIMS: list[int] = []


def _release_memory(session_context: Any) -> None:
    """After a session closes, give freed memory back to the operating system.

    CPython keeps freed arenas and glibc keeps freed heap pages; a wall of screens that
    reconnects every night would otherwise hold its peak for good.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def make_pages(workspace: Any, lang: str | None = None) -> dict[str, Callable[[], Any]]:
    """The pages of the server: slug -> function building the page for one session."""
    lang = lang or workspace.config.language

    def cockpit() -> Any:
        return cockpit_page(workspace, lang)

    def detail() -> Any:
        return cockpit_page(workspace, lang, action="view_fine_cases")

    def zones() -> Any:
        return zones_page(workspace, lang)

    def catalog() -> Any:
        return catalog_page(workspace, lang)

    def events() -> Any:
        return events_page(workspace, lang)

    def tasks() -> Any:
        return tasks_page(workspace, lang)

    return {"cockpit": cockpit, "detail": detail, "zones": zones, "catalog": catalog,
            "events": events, "tasks": tasks}


#: Which action each page needs (checked over HTTP before the page is built, and again by
#: the page itself).
PAGE_ACTIONS = {"/cockpit": "view_cockpit", "/detail": "view_fine_cases",
                "/zones": "edit_zones", "/catalog": "ingest_layers",
                "/events": "dispatch_events", "/tasks": "handle_events"}


def _refusal_template(root: Any) -> str:
    """Write the 403 page Panel answers when :func:`authorize` refuses; return its path.

    Panel renders it with ``error_msg`` (the user and the page); the table of which roles
    open which page comes from :data:`twin.users.PERMISSIONS`.
    """
    from twin.users import PERMISSIONS, ROLE_LABELS

    rows = "".join(
        f"<tr><td>{html.escape(path)}</td><td>"
        + "、".join(f"{html.escape(ROLE_LABELS[r][0])} {r}" for r in sorted(PERMISSIONS[action]))
        + "</td></tr>" for path, action in PAGE_ACTIONS.items())
    message = ("您的角色无权打开此页 · Your role may not open this page: "
               "{{ error_msg }}</p><table><tr><th>页面 page</th><th>可打开的角色 roles</th></tr>"
               f"{rows}</table><p>请联系管理员 · ask an administrator for another role")
    page = REFUSED_HTML.format(title="403", message=message, login="/logout")
    path = Path(root) / "cache" / "refused.html"
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".refused.{os.getpid()}.part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return str(path)


def authorize(workspace: Any) -> Callable[[Any, str], bool]:
    """Panel's ``authorize_callback``: may this request's user open this page (HTTP 403 if
    not, before anything is built)?"""

    def callback(user_info: Any, path: str) -> bool:
        action = PAGE_ACTIONS.get("/" + path.strip("/").split("/")[0])
        if action is None:
            return True
        name = (user_info or {}).get("user") if isinstance(user_info, dict) else None
        return can_user(workspace, name or pn.state.user, action)

    return callback


def can_user(workspace: Any, name: str | None, action: str) -> bool:
    """Whether the user called ``name`` (loaded afresh) may do ``action``."""
    user = current_user(workspace, name)
    return user is not None and not user.disabled and can(user.role, action)


def serve(workspace: Any, *, port: int = 5006, address: str = "127.0.0.1",
          lang: str | None = None, show: bool = False, threaded: bool = False,
          cookie_secret: str | None = None, allow_origin: list[str] | None = None,
          num_procs: int = 1, on_ready: Callable[[], None] | None = None,
          tls_cert: str | None = None, tls_key: str | None = None,
          behind_https: bool = False) -> Any:
    """Serve the pages of ``workspace`` with login (returns the server or its thread).

    ``num_procs`` > 1 forks that many server processes sharing the port (Linux); each warms
    its own shared situation, and they share the precomputed days through the workspace's
    ``cache/situation``. ``on_ready`` is called in each process once it listens.
    ``tls_cert``/``tls_key`` serve HTTPS; ``behind_https`` trusts a reverse proxy's
    ``X-Forwarded-For``/``X-Forwarded-Proto``. Either marks every cookie ``Secure``.
    """
    os.environ.setdefault("BOKEH_RESOURCES", "server")
    pn.config.oauth_expiry = SESSION_DAYS
    pn.config.theme = "dark"  # every page is dark: widgets included
    if BODY_CSS not in pn.config.raw_css:
        pn.config.raw_css = [*pn.config.raw_css, BODY_CSS]
    # Kept in the workspace, so that a restart keeps every kiosk screen logged in.
    secret = (cookie_secret or os.environ.get("TWIN_COOKIE_SECRET")
              or workspace_cookie_secret(workspace.root))
    extra: dict[str, Any] = {"num_procs": num_procs} if num_procs > 1 else {}
    secure = bool(tls_cert) or behind_https
    provider = TwinAuthProvider(workspace, login_endpoint="/login",
                                logout_endpoint="/logout", secure=secure)
    pn.config.authorize_callback = authorize(workspace)
    pn.config.auth_template = _refusal_template(workspace.root)
    limits = workspace.config["security"]
    if tls_cert:
        extra.update(ssl_certfile=tls_cert, ssl_keyfile=tls_key)
    origins = allow_origin or [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    from dashboards.catalog_http import UPLOADS, catalog_patterns
    from dashboards.ogc import ogc_patterns
    from dashboards.open311 import open311_patterns

    _SERVER["secret"] = secret
    # The catalog's uploads live between requests: claimed for as long as the server runs,
    # so that another process opening the workspace does not clean them away.
    _CLAIMS.append(workspace.claim_tmp(UPLOADS))
    server = pn.serve(make_pages(workspace, lang), port=port, address=address, show=show,
                      extra_patterns=[*ogc_patterns(workspace), *open311_patterns(workspace),
                                      *catalog_patterns(workspace, secret)],
                      threaded=threaded, cookie_secret=secret, auth_provider=provider,
                      websocket_origin=origins, title="citytwin", start=threaded, **extra,
                      transforms=[SecurityHeaders], use_xheaders=behind_https,
                      websocket_max_message_size=int(
                          limits["max_websocket_message_mb"] * 2**20),
                      http_server_kwargs={"max_body_size": int(limits["max_body_mb"] * 2**20),
                                          "xheaders": behind_https},
                      # a closed page's session goes within seconds, not Bokeh's 15 s + 17 s
                      unused_session_lifetime_milliseconds=5_000,
                      check_unused_sessions_milliseconds=3_000)
    if threaded:
        return server
    harden_routes(server._tornado)
    # From here on we are in the (forked) process that serves: warm its situation in the
    # background so that the first screen finds today's picture ready.
    shared = shared_situation(workspace.root)

    def warm() -> None:
        from dashboards.zones_state import EDITOR_DEFAULT_ON

        shared.current()
        # The OGC API's modules and catalog, so that a GIS client's first request does not
        # wait for imports.
        with contextlib.suppress(TwinError):
            from twin.features import collections

            collections(workspace, "admin")
        for page_lang in ("zh", "en"):
            for role in ("viewer", "planner"):
                with contextlib.suppress(TwinError):
                    CockpitState(workspace, shared, role=role, lang=page_lang).tooltips()
        # The zone editor's map of the latest day (the same layers for every planner).
        with contextlib.suppress(TwinError):
            CockpitState(workspace, shared, role="planner", lang=lang or workspace.config.language,
                         layers_on=list(EDITOR_DEFAULT_ON)).map_layers()

    server.io_loop.add_callback(lambda: threading.Thread(
        target=warm, name="citytwin-warm", daemon=True).start())
    _escalate_periodically(workspace, server.io_loop)
    server.start()
    if on_ready is not None:
        server.io_loop.add_callback(on_ready)
    server.io_loop.start()
    return server
