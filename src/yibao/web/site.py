"""What every page shares: templates, the navigation (filtered by role), the logged-in user, CSRF.

Pages register themselves in :data:`NAV` with the permission they need (an action of
:data:`yibao.service.auth.PERMISSIONS`); the menu shows a user only the entries their role may use,
and :func:`require` refuses the rest with a Chinese 403 page. Later domains (经办 worklists,
参保登记) add their pages with :func:`nav_entry` — the extension point issue #19 leaves for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from yibao.privacy import mask_certno, mask_name
from yibao.service.auth import PERMISSIONS, ROLES
from yibao.web.users import WebPrincipal, principal_of, same_token

HERE = Path(__file__).parent
SESSION_COOKIE = "yb_session"
LOGIN_COOKIE = "yb_login"  # double-submit CSRF token of the login form (no session yet)
PREFIX = "/web"


@dataclass(frozen=True)
class NavEntry:
    path: str
    label: str
    action: str  # a PERMISSIONS key
    order: int = 100  # place in the menu (modules register in whatever order they are imported)


NAV: list[NavEntry] = []


def nav_entry(path: str, label: str, action: str, order: int = 100) -> None:
    """Add a page to the menu; shown to the roles PERMISSIONS[action] names."""
    if action not in PERMISSIONS:
        raise KeyError(action)
    if all(e.path != PREFIX + path for e in NAV):
        NAV.append(NavEntry(PREFIX + path, label, action, order))
        NAV.sort(key=lambda e: e.order)


def allowed(who: WebPrincipal | None, action: str) -> bool:
    return who is not None and who.role in PERMISSIONS[action]


class LoginRequired(Exception):
    def __init__(self, next_path: str):
        self.next_path = next_path


class Refused(Exception):
    """A logged-in user without the role for this page or action (rendered as the 403 page)."""

    def __init__(self, message: str):
        self.message = message


class BadCsrf(Exception):
    pass


def yuan(value: Any) -> str:
    """Decimal yuan as ``1,234.50`` (what the pages show; amounts come from the service already in yuan)."""
    if value is None or value == "":
        return ""
    from decimal import Decimal
    return f"{Decimal(str(value)):,.2f}"


ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters["yuan"] = yuan
ENV.filters["mask_certno"] = mask_certno
ENV.filters["mask_name"] = mask_name
ENV.globals["ROLES"] = ROLES


def render(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
    who: WebPrincipal | None = getattr(request.state, "web_user", None)
    nav = [e for e in NAV if allowed(who, e.action)]
    html = ENV.get_template(template).render(request=request, who=who, nav=nav, path=request.url.path,
                                             csrf=who.csrf if who else "", **ctx)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


# no framing, no sniffing, no third-party anything: every asset is served from /web/static
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'",
}


def current(request: Request, desk) -> WebPrincipal:
    """The logged-in user, or a redirect to the login page."""
    token = request.cookies.get(SESSION_COOKIE)
    who = desk.write(None, "", lambda s: principal_of(s, token, datetime.now()))[0] if token else None
    if who is None:
        raise LoginRequired(request.url.path)
    request.state.web_user = who
    return who


def require(who: WebPrincipal, action: str) -> None:
    if who.role not in PERMISSIONS[action]:
        raise Refused(f"您的角色「{ROLES.get(who.role, who.role)}」无权使用此功能({action})。如需办理, 请联系管理员分配角色。")


def check_csrf(who: WebPrincipal, form) -> None:
    if not same_token(form.get("csrf"), who.csrf):
        raise BadCsrf()


class NotFoundPage(Exception):
    def __init__(self, message: str):
        self.message = message
