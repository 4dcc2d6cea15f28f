"""The status page: recent jobs and each job's detail as server-rendered HTML, behind a token."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from html import escape
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from mailfax.jobs import JobState
from mailfax.operations import JobDetail, age, iso_time, job_detail
from mailfax.policy import format_for_humans
from mailfax.smtp.auth import LoginThrottle
from mailfax.store import JobStats, JobSummary, Store

COOKIE = "mailfax_admin"
# A login lasts this long; then the token is asked for again.
SESSION_LIFETIME = 12 * 3600
RECENT = 100
ADMIN_FREE_FAILURES = 3
_HEADERS = {
    # Nothing but the page's own inline style: no scripts, no frames, forms only to us.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2329; }
h1 { font-size: 1.3rem; margin: 0 0 1rem; } h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
a { color: #0b5cad; } table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e1e4e8; }
th { background: #f3f5f7; font-weight: 600; } td.num { text-align: right; }
.state { display: inline-block; padding: 0 .5rem; border-radius: .6rem; font-size: .85rem;
  background: #e1e4e8; }
.state-delivered { background: #d3f3da; } .state-failed { background: #fbd7d7; }
.state-cancelled { background: #ececec; } .state-unknown { background: #fdecc8; }
.state-queued, .state-uploading, .state-submitting, .state-submitted { background: #d7e8fb; }
.counts a { margin-right: .8rem; } .counts .current { font-weight: 700; }
form.filter { margin: 1rem 0; } dl { display: grid; grid-template-columns: max-content auto;
  gap: .2rem 1rem; } dt { color: #59636e; } dd { margin: 0; } .muted { color: #59636e; }
"""


def status_routes(store: Store, admin_token: str) -> list[Route]:
    """GET / (recent jobs, ?state= to filter), GET /jobs/<id>, POST /login."""
    page = _StatusPage(store, admin_token)
    return [
        Route("/", page.index, methods=["GET"]),
        Route("/jobs/{job_id}", page.job, methods=["GET"]),
        Route("/login", page.login, methods=["POST"]),
    ]


def session_value(admin_token: str, expires: int) -> str:
    """The cookie proving a login until `expires` (epoch seconds): "<expires>.<HMAC>", keyed by
    the token, so the token itself is not stored and the expiry cannot be moved."""
    mac = hmac.new(
        admin_token.encode(), f"mailfax status page {expires}".encode(), hashlib.sha256
    ).hexdigest()
    return f"{expires}.{mac}"


class _StatusPage:
    def __init__(self, store: Store, admin_token: str) -> None:
        self._store = store
        self._token = admin_token
        # Wrong tokens per client address: past a few typos, each failure doubles the wait
        # before the next is even checked, as for SMTP logins.
        self._throttle = LoginThrottle()

    def _session_valid(self, cookie: str, now: float) -> bool:
        expires, _, _ = cookie.partition(".")
        if not expires.isdigit() or int(expires) <= now:
            return False
        expected = session_value(self._token, int(expires))
        return hmac.compare_digest(cookie.encode(), expected.encode())

    def _gate(self, request: Request) -> Response | None:
        """None if the request may see the page; else the login page, the login redirect, or
        429 while the client's wrong tokens are throttled."""
        now = time.time()
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        token = request.query_params.get("token")
        if self._session_valid(request.cookies.get(COOKIE, ""), now) and token is None:
            return None
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        offered = token if token is not None else bearer or None
        if offered is None:
            return _login_page(_local(target), failed=False)
        refusal = self._check_token(request, offered, target, now)
        if refusal is not None:
            return refusal
        if token is None:
            return None  # the Bearer token: for scripts, no cookie
        # A bookmarkable ?token= is traded for the cookie at once, and dropped from the URL.
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        rest = urlencode(kept)
        return self._logged_in(request, request.url.path + (f"?{rest}" if rest else ""), now)

    def _check_token(
        self, request: Request, offered: str, target: str, now: float
    ) -> Response | None:
        """None if `offered` is the admin token; else the throttled or failed login page."""
        key = f"admin:{request.client.host if request.client else 'unknown'}"
        keys = {key: ADMIN_FREE_FAILURES}
        wait = self._throttle.wait(keys, now)
        if wait > 0:
            return _login_page(_local(target), failed=True, wait=wait)
        if not hmac.compare_digest(offered.encode(), self._token.encode()):
            self._throttle.failed(keys, now)
            return _login_page(_local(target), failed=True)
        self._throttle.succeeded(key)
        return None

    def _logged_in(self, request: Request, target: str, now: float) -> Response:
        response = RedirectResponse(_local(target), status_code=303, headers=_HEADERS)
        response.set_cookie(
            COOKIE,
            session_value(self._token, int(now) + SESSION_LIFETIME),
            max_age=SESSION_LIFETIME,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def login(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        token = form.get("token", [""])[0]
        target = form.get("next", ["/"])[0]
        now = time.time()
        refusal = self._check_token(request, token, target, now)
        return refusal or self._logged_in(request, target, now)

    async def index(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        wanted = request.query_params.get("state", "")
        state = JobState(wanted) if wanted in {s.value for s in JobState} else None
        stats = await self._store.job_stats()
        jobs = await self._store.list_jobs(state, None, "", RECENT)
        body = _counts(stats, state) + _filter_form(state) + _job_table(jobs, time.time())
        return _page("mailfax status", body)

    async def job(self, request: Request) -> Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        detail = await job_detail(self._store, request.path_params["job_id"])
        if detail is None:
            body = '<p>No such job. <a href="/">All jobs</a></p>'
            return _page("mailfax: no such job", body, status_code=404)
        return _page(f"mailfax job {detail.job.id}", _job_detail(detail))


def _local(target: str) -> str:
    """Only paths on this site: a login must not redirect elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><h1><a href="/">mailfax</a> status</h1>{body}</body></html>'
    )
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _login_page(target: str, failed: bool, wait: float = 0.0) -> HTMLResponse:
    note = '<p class="muted">That token is not right.</p>' if failed else ""
    if wait > 0:
        note = (
            f'<p class="muted">Too many wrong tokens from your address: try again in '
            f"{math.ceil(wait)} s.</p>"
        )
    body = (
        f"<p>This page needs the admin token (<code>[http] admin_token</code>).</p>{note}"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{escape(target)}">'
        '<label>Token <input type="password" name="token" autocomplete="current-password">'
        '</label> <button type="submit">Log in</button></form>'
    )
    if wait > 0:
        response = _page("mailfax: log in", body, status_code=429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    return _page("mailfax: log in", body, status_code=401)


def _state_badge(state: str) -> str:
    return f'<span class="state state-{escape(state)}">{escape(state)}</span>'


def _counts(stats: JobStats, current: JobState | None) -> str:
    links = [f'<a href="/"{" class=current" if current is None else ""}>all</a>']
    for state in JobState:
        mark = ' class="current"' if state is current else ""
        links.append(
            f'<a href="/?state={state.value}"{mark}>{state.value} {stats.counts.get(state, 0)}</a>'
        )
    oldest = stats.oldest_unfinished
    waiting = age(time.time() - oldest) if oldest is not None else ""
    queue = f"oldest unfinished job {waiting}" if waiting else "nothing waiting"
    return f'<p class="counts">{"".join(links)}<span class="muted">{queue}</span></p>'


def _filter_form(current: JobState | None) -> str:
    options = ['<option value="">all states</option>']
    for state in JobState:
        selected = " selected" if state is current else ""
        options.append(f'<option value="{state.value}"{selected}>{state.value}</option>')
    return (
        '<form class="filter" method="get" action="/"><label>State '
        f'<select name="state" id="state">{"".join(options)}</select></label> '
        '<button type="submit">Filter</button></form>'
    )


def _job_table(jobs: list[JobSummary], now: float) -> str:
    if not jobs:
        return '<p class="muted" id="no-jobs">No jobs.</p>'
    rows = []
    for summary in jobs:
        job = summary.job
        rows.append(
            f'<tr data-state="{job.state.value}"><td><a href="/jobs/{escape(job.id)}">'
            f"{escape(job.id)}</a></td><td>{_state_badge(job.state.value)}</td>"
            f"<td>{escape(format_for_humans(job.number))}</td>"
            f"<td>{escape(summary.mail_from or '<>')}</td>"
            f'<td class="num">{summary.pages}</td>'
            f'<td class="num" title="{iso_time(job.created_at)}">{age(now - job.created_at)}</td>'
            "</tr>"
        )
    return (
        f'<p class="muted">{len(jobs)} job{"s" if len(jobs) != 1 else ""}, newest first '
        f'(at most {RECENT}).</p><table id="jobs"><thead><tr>'
        "<th>Job</th><th>State</th><th>Number</th><th>Sender</th><th>Pages</th><th>Age</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _definitions(pairs: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in pairs)
    return f"<dl>{items}</dl>"


def _job_detail(detail: JobDetail) -> str:
    job, message, receipt = detail.job, detail.message, detail.receipt
    facts = [
        ("Number", f"{format_for_humans(job.number)} ({job.number})"),
        ("Created", iso_time(job.created_at)),
        ("Pages", str(detail.pages)),
        ("Attempts", f"{job.attempts} (redials {job.redials}, recoveries {job.recoveries})"),
        ("FAX.PLUS fax id", job.fax_id or "-"),
        ("FAX.PLUS status", job.fax_status or "-"),
        ("Uploaded files", ", ".join(job.uploaded) or "-"),
    ]
    if job.error:
        facts.append(("Error", job.error))
    parts = [f"<h2>Job {escape(job.id)} {_state_badge(job.state.value)}</h2>", _definitions(facts)]
    if message is not None:
        parts.append("<h2>Mail</h2>")
        parts.append(
            _definitions(
                [
                    ("Queue id", message.id),
                    ("Received", iso_time(message.received_at)),
                    ("From", message.mail_from or "<>"),
                    ("Subject", message.subject or "-"),
                    ("Comment", message.comment or "-"),
                ]
            )
        )
        rows = "".join(
            f"<tr><td>{escape(part.action)}</td><td>{escape(part.name)}</td>"
            f"<td>{escape(part.content_type)}</td>"
            f'<td class="num">{"-" if part.pages is None else part.pages}</td>'
            f"<td>{escape(part.reason)}</td></tr>"
            for part in message.report
        )
        parts.append(
            "<h2>Extraction</h2><table><thead><tr><th>Action</th><th>Part</th><th>Type</th>"
            f"<th>Pages</th><th>Why</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    history = "".join(
        f"<tr><td>{iso_time(at)}</td><td>{escape(old or '')}</td><td>{escape(new)}</td>"
        f"<td>{escape(text)}</td></tr>"
        for at, old, new, text in detail.history
    )
    parts.append(
        '<h2>History</h2><table id="history"><thead><tr><th>At</th><th>From</th><th>To</th>'
        f"<th>Detail</th></tr></thead><tbody>{history}</tbody></table>"
    )
    parts.append("<h2>Receipt</h2>")
    if receipt is None:
        parts.append('<p class="muted">None (the job is not final, or its sender gets none).</p>')
    else:
        parts.append(
            _definitions(
                [
                    ("State", receipt.state),
                    ("To", receipt.recipient),
                    ("Attempts", str(receipt.attempts)),
                    ("Sent", iso_time(receipt.sent_at) or "-"),
                    ("Last error", receipt.error or "-"),
                ]
            )
        )
    return "".join(parts)
