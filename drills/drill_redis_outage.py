"""Redis outage drill: stop Redis while a visitor and an operator chat, start it again.

A private PostgreSQL and Redis, Openline under uvicorn with 2 web workers (so events cross
processes through Redis). A visitor (real websocket), an operator (real websocket, signed-in
session) and the widget in headless chromium (the visitor's own page) exchange messages.
Then Redis is stopped:

* both sockets get an ``unavailable`` error frame and close with 1013 (time measured); the
  widget in the browser shows its "Reconnecting…" state; a socket opened meanwhile is refused
  the same way;
* consent capture over HTTP keeps working: widget starts answer 201;
* the operator replies over the HTTP API (201: stored, acknowledged).

Redis is started again; nothing is restarted in Openline:

* the visitor reconnects with its last message id and gets every reply sent during the outage;
  the browser's widget leaves its reconnecting state and shows them;
* live exchange works again both ways across the two processes;
* every start acknowledged during the outage is stored whole, nothing half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import httpx
import websockets

from drills.harness import (
    OpenlineServer,
    PrivatePostgres,
    PrivateRedis,
    drill_env,
    free_port,
    run_script,
    seed_livechat_channel,
    start_body,
    widget_start_async,
)
from drills.outage import rounded
from drills.registry_checks import half_written, snapshot

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

STAFF = r"""
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from openline.accounts.api_tokens import create_token
from openline.accounts.models import Role, User
from openline.accounts.services import create_staff_user

admin = User.objects.filter(username="drill-admin").first() or create_staff_user(
    username="drill-admin", password="drill-password-123", role=Role.ADMINISTRATOR,
    display_name="Drill Admin")
session = SessionStore()
session[SESSION_KEY] = str(admin.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
session.save()
print("RESULT" + json.dumps({"session": session.session_key,
    "token": create_token(admin, "outage drill").secret}))
"""


class Socket:
    """A websocket with its frames collected in the background."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[tuple[float, dict]] = []
        self.closed_at: float | None = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append((time.monotonic(), json.loads(raw)))
        except websockets.ConnectionClosed:
            pass
        self.closed_at = time.monotonic()

    async def wait_for(self, check, timeout: float = 10) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _at, frame in self.frames:
                if check(frame):
                    return frame
            await asyncio.sleep(0.05)
        return None

    async def send(self, frame: dict) -> None:
        # A socket refused at once (1013) may be closed before this is sent: its frames say so.
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send(json.dumps(frame))


async def _visitor(url: str, code: str, token: str, last_id: int) -> Socket:
    ws = await websockets.connect(f"{url.replace('http', 'ws')}/ws/widget/{code}/", origin=url)
    socket = Socket(ws)
    await socket.send({"type": "auth", "token": token, "last_id": last_id})
    return socket


async def _operator(url: str, session: str) -> Socket:
    ws = await websockets.connect(
        f"{url.replace('http', 'ws')}/ws/console/",
        origin=url,
        additional_headers={"Cookie": f"sessionid={session}"},
    )
    return Socket(ws)


def _is(kind: str, **fields):
    def check(frame: dict) -> bool:
        return frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items())

    return check


def _message(text: str):
    return lambda f: f.get("type") == "message" and (f.get("message") or {}).get("text") == text


async def _drill(server: OpenlineServer, redis: PrivateRedis, seed, staff: dict, quick: bool):
    from playwright.async_api import async_playwright

    run = uuid.uuid4().hex[:6]
    out: dict = {"problems": []}
    problems = out["problems"]
    async with httpx.AsyncClient(timeout=30) as client:
        first = await widget_start_async(client, server.url, seed, start_body(seed, "Hi", "v0"))
        started = first.json()
        token, conversation = started["token"], started["conversation"]["id"]
        out["conversation"] = conversation
        last_id = started["message"]["id"]
        visitor = await _visitor(server.url, seed.code, token, last_id)
        operator = await _operator(server.url, staff["session"])
        if not (await visitor.wait_for(_is("ready")) and await operator.wait_for(_is("ready"))):
            problems.append("the sockets did not get ready before the outage")

        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = await browser.new_page()
            await page.add_init_script(
                f"localStorage.setItem({json.dumps('openline:' + seed.code)},"
                f" JSON.stringify({{token: {json.dumps(token)}}}));"
            )
            await page.goto(f"{server.url}/widget/{seed.code}/frame")
            status = page.locator("#ol-status")
            log = page.locator("#ol-log")
            await log.get_by_text("Hi").first.wait_for(timeout=15000)

            # Before: both ways, live, across the two web processes.
            await operator.send(
                {
                    "type": "reply",
                    "conversation": conversation,
                    "text": f"op before {run}",
                    "client_id": f"op-b-{run}",
                }
            )
            await visitor.send(
                {
                    "type": "message",
                    "conversation": conversation,
                    "text": f"v before {run}",
                    "client_id": f"v-b-{run}",
                }
            )
            got_v = await visitor.wait_for(_message(f"op before {run}"))
            got_o = await operator.wait_for(_message(f"v before {run}"))
            await log.get_by_text(f"op before {run}").wait_for(timeout=10000)
            if not (got_v and got_o):
                problems.append("live exchange before the outage failed")
            last_id = max(
                last_id,
                *(f["message"]["id"] for _t, f in visitor.frames if f.get("type") == "message"),
            )

            # Redis stops.
            stopped = time.monotonic()
            await asyncio.to_thread(redis.stop)
            told_v = await visitor.wait_for(_is("error", code="unavailable"))
            told_o = await operator.wait_for(_is("error", code="unavailable"))
            for _ in range(100):
                if visitor.closed_at and operator.closed_at:
                    break
                await asyncio.sleep(0.05)
            codes = (visitor.ws.close_code, operator.ws.close_code)
            out["closed_after_s"] = max(
                (s.closed_at or time.monotonic()) - stopped for s in (visitor, operator)
            )
            if not (told_v and told_o) or codes != (1013, 1013):
                problems.append(f"sockets not told/closed with 1013: {codes}")
            await status.get_by_text("Reconnecting").wait_for(timeout=15000)
            out["browser_reconnecting_after_s"] = time.monotonic() - stopped
            refused = await _visitor(server.url, seed.code, token, last_id)
            if not await refused.wait_for(_is("error", code="unavailable")):
                problems.append("a socket opened during the outage was not refused")

            # During the outage: captures over HTTP and operator replies over the API.
            captures = []
            for i in range(5 if quick else 20):
                body = start_body(seed, f"Outage capture {run} {i}", f"out-{run}-{i}")
                response = await widget_start_async(
                    client, server.url, seed, body, idempotency_key=f"out-{run}-{i}-key0000"
                )
                captures.append((response.status_code, response.json()))
            out["captures"] = captures
            replies = []
            for i in range(3):
                response = await client.post(
                    f"{server.url}/api/v1/conversations/{conversation}/messages",
                    json={"text": f"op during {run} {i}", "client_id": f"op-d-{run}-{i}"},
                    headers={"Authorization": f"Bearer {staff['token']}"},
                )
                replies.append((response.status_code, response.json()))
            out["replies"] = replies
            if any(code != 201 for code, _ in captures + replies):
                problems.append(f"refused during the outage: {[c for c, _ in captures + replies]}")

            # Redis is back; Openline is not restarted.
            back = time.monotonic()
            await asyncio.to_thread(redis.start)
            visitor = operator = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                candidate = await _visitor(server.url, seed.code, token, last_id)
                ready = await candidate.wait_for(
                    lambda f: f.get("type") in ("ready", "error"), timeout=5
                )
                if ready and ready["type"] == "ready":
                    visitor = candidate
                    break
                await asyncio.sleep(0.3)
            out["visitor_back_after_s"] = time.monotonic() - back
            if visitor is None:
                problems.append("the visitor could not reconnect after Redis came back")
                await browser.close()
                return out
            ready = await visitor.wait_for(_is("ready"))
            resent = [m["text"] for m in (ready or {}).get("messages", [])]
            missing = [
                f"op during {run} {i}" for i in range(3) if f"op during {run} {i}" not in resent
            ]
            if missing:
                problems.append(
                    f"replies sent during the outage missing after reconnect: {missing}"
                )
            for i in range(3):
                await log.get_by_text(f"op during {run} {i}").wait_for(timeout=20000)
            await status.wait_for(state="hidden", timeout=20000)
            out["browser_live_after_s"] = time.monotonic() - back
            await page.screenshot(path=str(server.log.with_suffix(".png")))
            await browser.close()

        operator = await _operator(server.url, staff["session"])
        await operator.wait_for(_is("ready"))
        await visitor.send(
            {
                "type": "message",
                "conversation": conversation,
                "text": f"v after {run}",
                "client_id": f"v-a-{run}",
            }
        )
        await operator.send(
            {
                "type": "reply",
                "conversation": conversation,
                "text": f"op after {run}",
                "client_id": f"op-a-{run}",
            }
        )
        if not (
            await operator.wait_for(_message(f"v after {run}"))
            and await visitor.wait_for(_message(f"op after {run}"))
        ):
            problems.append("live exchange after the outage failed")
        for socket in (visitor, operator):
            await socket.ws.close()
    return out


def run(args) -> list[dict]:
    pg = PrivatePostgres(free_port(18640, 18649)).start()
    redis = PrivateRedis(free_port(18680, 18689)).start()
    env = drill_env(pg.create_database("openline"), redis.url)
    seed = seed_livechat_channel(env, name="Redis outage drill site")
    staff = run_script(env, STAFF)
    server = OpenlineServer(env, free_port(18610, 18619), workers=2).start()
    workers = sorted(server.pids())
    out = asyncio.run(_drill(server, redis, seed, staff, args.quick))
    snap = snapshot(pg, seed.channel_id)
    # The chat's own conversation holds the exchanged messages: only its first one is a capture's.
    chat = out.get("conversation")
    firsts = [m for m in snap["messages"] if m[1] == chat]
    captures_only = dict(
        snap, messages=[m for m in snap["messages"] if m[1] != chat] + sorted(firsts)[:1]
    )
    half = half_written(captures_only)
    stored_records = set(snap["records"])
    acknowledged = [body for code, body in out.get("captures", []) if code == 201]
    unstored = [b.get("record") for b in acknowledged if b.get("record") not in stored_records]
    replies = [body.get("id") for code, body in out.get("replies", []) if code == 201]
    message_ids = {mid for mid, _c, _client in snap["messages"]}
    lost_replies = [r for r in replies if r not in message_ids]
    same_workers = sorted(server.pids()) == workers
    server.stop()
    problems = out["problems"]
    return [
        {
            "name": "redis outage: sockets told and closed, the widget shows it is reconnecting",
            "ok": not problems and bool(out.get("closed_after_s") is not None),
            "detail": (
                f"sockets closed with 1013 {rounded(out.get('closed_after_s'))} s after Redis"
                f' stopped; chromium\'s widget showed "Reconnecting…"'
                f" {rounded(out.get('browser_reconnecting_after_s'))} s after;"
                f" visitor back {rounded(out.get('visitor_back_after_s'))} s after Redis"
                f" started, the browser live again {rounded(out.get('browser_live_after_s'))} s"
                f" after, with the replies sent during the outage; live both ways again across"
                f" 2 web workers (never restarted: {same_workers})"
                + (f"; problems: {problems}" if problems else "")
            ),
            "closed_after_s": rounded(out.get("closed_after_s")),
            "browser_reconnecting_after_s": rounded(out.get("browser_reconnecting_after_s")),
            "visitor_back_after_s": rounded(out.get("visitor_back_after_s")),
        },
        {
            "name": "redis outage: HTTP capture and API replies keep working, nothing lost",
            "ok": bool(acknowledged)
            and len(acknowledged) == len(out.get("captures", []))
            and not unstored
            and not half
            and len(replies) == 3
            and not lost_replies,
            "detail": (
                f"{len(acknowledged)}/{len(out.get('captures', []))} widget starts answered 201"
                f" without Redis, all stored: {not unstored}; {len(replies)}/3 API replies"
                f" stored: {not lost_replies}, each delivered after the reconnect;"
                f" {len(half)} half-written"
            ),
            "captures_201": len(acknowledged),
            "half_written": len(half),
        },
    ]
