"""Logging in over plain HTTP as a browser does: the login form's CSRF token first."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.parse
import urllib.request

__all__ = ["form_token", "login_cookie", "login_opener", "logout"]

_TOKEN = re.compile(r'name="_xsrf" value="([^"]+)"')


def form_token(page: str) -> str:
    """The CSRF token of a form page's HTML (the login or the log-out confirmation)."""
    match = _TOKEN.search(page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def login_opener(base: str, user: str, password: str
                 ) -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar, str]:
    """An opener logged in as ``user`` (no proxy), its cookie jar and where the login led."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.ProxyHandler({}))
    token = form_token(opener.open(f"{base}/login", timeout=30).read().decode())
    with opener.open(f"{base}/login", data=urllib.parse.urlencode(
            {"username": user, "password": password, "_xsrf": token}).encode(),
            timeout=60) as answer:
        answer.read()
        return opener, jar, answer.geturl()


def login_cookie(base: str, user: str, password: str) -> str:
    """Log in once; the ``Cookie`` header every later request of that session sends."""
    _, jar, _ = login_opener(base, user, password)
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def logout(base: str, cookie: str) -> int:
    """Log out as a browser does: the confirmation page, then its form posted with the CSRF
    token and the cookies (``cookie``: a ``Cookie`` header); the answer's status."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(f"{base}/logout", headers={"Cookie": cookie}),
                     timeout=30) as page:
        token = form_token(page.read().decode())
        fresh = [h.split(";", 1)[0] for h in page.headers.get_all("Set-Cookie") or []
                 if h.startswith("_xsrf=")]
    header = "; ".join([cookie, *fresh])
    request = urllib.request.Request(f"{base}/logout", headers={"Cookie": header},
                                     data=urllib.parse.urlencode({"_xsrf": token}).encode())
    with opener.open(request, timeout=30) as answer:
        answer.read()
        return answer.status
