"""Mounting the web front door on the service's FastAPI app: one call, :func:`install`.

Same process, same :class:`~yibao.service.desk.Desk` (store and packs), same roles
(:mod:`yibao.service.auth`), same audit log (:func:`yibao.service.transactions.audit`).

Cookies: the session cookie is ``Secure; HttpOnly; SameSite=Strict``. ``Secure`` stays on even over
plain http: browsers treat ``http://127.0.0.1`` and ``http://localhost`` as secure contexts and
accept it there (the browser tests run that way), while over plain http to any other host the
browser drops the cookie and nobody can log in — production must sit behind TLS.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRouter
from fastapi.staticfiles import StaticFiles

from yibao.service.auth import Principal
from yibao.service.desk import Desk
from yibao.service.transactions import Context, audit
from yibao.web import (
    cases,
    enrolment,
    fund,
    handling,
    institutions,
    monitoring,
    packs,
    selfservice,
    simulate,
    site,
)
from yibao.web import desk as desk_pages  # noqa: F401, I001  (their NAV entries, in menu order)
from yibao.web.site import (
    LOGIN_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    BadCsrf,
    LoginRequired,
    Refused,
    render,
)
from yibao.web.users import (
    MAX_FAILURES,
    check_password,
    close_session,
    open_session,
    same_token,
)

COOKIE_FLAGS = {"secure": True, "httponly": True, "samesite": "strict", "path": "/"}


def install(app: FastAPI, desk: Desk) -> None:
    """Add the pages, their static files and their error pages to ``app``."""

    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    _login_routes(router, desk)
    desk_pages.routes(router, desk)
    selfservice.routes(router, desk)
    cases.routes(router, desk)
    packs.routes(router, desk)
    fund.routes(router, desk)
    simulate.routes(router, desk)
    monitoring.routes(router, desk)
    handling.routes(router, desk)
    institutions.routes(router, desk)
    enrolment.routes(router, desk)
    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=site.HERE / "static"), name="web-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=303)

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, exc: LoginRequired):
        return RedirectResponse(f"{PREFIX}/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused):
        return render(request, "refused.html", status=403, message=exc.message)

    @app.exception_handler(site.NotFoundPage)
    async def _missing(request: Request, exc: site.NotFoundPage):
        return render(request, "refused.html", status=404, title="未找到", message=exc.message)

    @app.exception_handler(BadCsrf)
    async def _csrf(request: Request, _exc: BadCsrf):
        return render(request, "refused.html", status=403,
                      message="表单已过期或来源不明(CSRF 校验未通过), 未办理任何业务。请刷新页面后重新提交。")


def _ctx(who: Principal) -> Context:
    return Context(request_id="web", opter=who.name, at=datetime.now().replace(microsecond=0))


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never ``//host`` or a scheme): no open redirect after login."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


def _login_routes(router: APIRouter, desk: Desk) -> None:
    import secrets

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = ""):
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", login_csrf=token, next=_safe_next(next), errors={}, username="")
        response.set_cookie(LOGIN_COOKIE, token, max_age=1800, **COOKIE_FLAGS)
        return response

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request):
        form = await request.form()
        username = str(form.get("username", "")).strip()[:40]
        password = str(form.get("password", ""))[:200]
        target = _safe_next(str(form.get("next", "")))
        errors: dict[str, str] = {}
        if not same_token(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE)):
            errors["form"] = "登录表单已过期, 请重新输入(CSRF 校验未通过)。"
        if not username:
            errors["username"] = "请输入用户名"
        if not password:
            errors["password"] = "请输入密码"
        if errors:
            return _login_again(request, target, username, errors)
        now = datetime.now().replace(microsecond=0)

        def attempt(s):
            result = check_password(s, username, password, now)
            if result.user is not None:
                who = Principal(result.user.username, result.user.role, result.user.fixmedins_code)
                action = {"ok": "web.login", "bad": "web.login_failed", "locked": "web.login_locked",
                          "just_locked": "web.lock"}[result.outcome]
                audit(s, who, Context("web", username, now), action, "web_user", username,
                      {"locked_until": result.locked_until.isoformat() if result.locked_until else None})
            token = open_session(s, username, now)[0] if result.outcome == "ok" else None
            return result.outcome, result.locked_until, token

        outcome, until, token = desk.write(None, "", attempt)[0]
        if outcome == "ok":
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(SESSION_COOKIE, token, **COOKIE_FLAGS)
            response.delete_cookie(LOGIN_COOKIE, path="/")
            return response
        if outcome in ("locked", "just_locked"):
            errors["form"] = (f"连续 {MAX_FAILURES} 次密码错误, "
                              f"账户已锁定至 {until:%H:%M}; 请稍后再试或联系管理员。")
        else:
            errors["password"] = "用户名或密码错误"
        return _login_again(request, target, username, errors, status=401 if outcome == "bad" else 423)

    def _login_again(request: Request, target: str, username: str, errors: dict, status: int = 422):
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", status=status, login_csrf=token, next=target, errors=errors,
                          username=username)
        response.set_cookie(LOGIN_COOKIE, token, max_age=1800, **COOKIE_FLAGS)
        return response

    @router.post("/logout")
    async def logout(request: Request):
        who = site.current(request, desk)
        site.check_csrf(who, await request.form())
        token = request.cookies.get(SESSION_COOKIE)

        def end(s):
            close_session(s, token)
            audit(s, who, _ctx(who), "web.logout", "web_user", who.name, {})
        desk.write(None, "", end)
        response = RedirectResponse(PREFIX + "/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request):
        site.current(request, desk)  # signed in, or redirected to the login page
        return render(request, "home.html")
