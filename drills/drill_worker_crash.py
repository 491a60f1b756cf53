"""Worker crash drill: task workers killed mid-delivery; after a restart each job is done once.

A private PostgreSQL and Redis, a fake Telegram API and a webhook receiver on loopback, and
``manage.py db_worker`` processes that are killed with SIGKILL:

(a) **messenger reply**: the worker is killed while Telegram holds the ``sendMessage`` request
    open. Telegram has no idempotency key, so nobody can know whether the client got it:
    the reply is never sent a second time; after ``--uncertain-after`` the sweep marks it
    "uncertain" and the operator sees "Delivery uncertain — resend if needed". A reply queued
    while every worker was dead is sent after the restart, exactly once.
(b) **outgoing webhook**: the worker is killed while the receiver holds the POST open (the
    receiver had already taken the event). The delivery's claim is a 30 s lease; when it
    expires the sweep delivers again with the same ``webhook-id`` and the row ends
    "delivered". HTTP gives at-least-once: the receiver sees the request twice, and
    deduplicating on ``webhook-id`` (as Standard Webhooks asks) makes it accept the event
    exactly once. Each request is checked with the ``standardwebhooks`` library.
(c) **seal**: the worker is killed in the middle of sealing thousands of records (some
    batches written, the rest not). Its task stays "running" for ever (django-tasks never
    retries it); the periodic sweep of ``messengers_run`` seals the rest, each record once,
    and ``consent_verify`` passes.
(d) **registry verification**: the worker is killed while it verifies the registry for a run
    started from the console. The run stays "running" with a heartbeat that stopped; the sweep
    queues it again after ``--verify-stalled-after`` and a worker finishes it ("passed").
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from drills.harness import (
    DrillFailure,
    OpenlineWorker,
    PrivatePostgres,
    PrivateRedis,
    drill_env,
    free_port,
    manage,
    migrate,
    run_script,
)
from openline.testing.fake_platforms import Answer, FakePlatform, Recorded

STALL = 25.0  # seconds a fake server holds the first request (the worker dies meanwhile)
UNCERTAIN_AFTER = 15  # messengers_run --uncertain-after in the drill (120 s by default)
SEND_PATH = r"/bot[^/]+/sendMessage"

SETUP = r"""
from openline.accounts.services import create_staff_user
from openline.consent import services as consent_services
from openline.conversations import inbound
from openline.conversations.actions import create_visitor, send_reply
from openline.conversations.models import Conversation
from openline.core.secrets import encrypt_json
from openline.openchannels.models import Connector, OpenChannel
from openline.openchannels.services import create_open_channel
from openline.webhooks.services import create_endpoint

receiver_url = sys.argv[1]
operator = create_staff_user(username="drill-operator", password="drill-password-123",
                             role="operator", display_name="Drill Operator")
channel = create_open_channel(actor=None, name="Worker drill", operators=[operator],
                              connectors=["telegram"])
Connector.objects.filter(channel=channel, kind="telegram").update(
    secrets=encrypt_json({"bot_token": "999000111:drill-token", "secret_token": "drill-secret"}),
    webhook_token="drill-webhook-token", state="connected", mode="webhook", is_enabled=True)
endpoint, secret = create_endpoint(actor=None, url=receiver_url, events=["message.received"])
visitor = inbound.get_or_create_client(channel=channel, kind="telegram",
    client=inbound.ClientRef(external_id="5551001", name="Drill Client", language="en"))
inbound.receive_inbound(channel=channel, kind="telegram", visitor=visitor, key="drill-in-1",
    text="Where is my parcel?", source=inbound.SourceRef(type="", id="", label=""))
conversation = Conversation.objects.get(visitor=visitor)
message, _ = send_reply(conversation=conversation, actor=operator, text="Reply A: it ships today")
agreement = consent_services.create_agreement(actor=None, name="Drill notice",
    text="We keep your messages to answer you.", allow_html=False)
web_visitor = create_visitor(channel=channel, origin="livechat")
consent_services.record_consent(visitor=web_visitor, version=agreement.current_version,
    language="en", state="given", method="clicked_accept", origin="livechat",
    source_type="website", address="https://shop.example/", ip="203.0.113.9")
print("RESULT" + json.dumps({"secret": secret, "conversation": conversation.pk,
                            "operator": operator.pk, "message": message.pk}))
"""

REPLY = r"""
from openline.accounts.models import User
from openline.conversations.actions import send_reply
from openline.conversations.models import Conversation
message, _ = send_reply(conversation=Conversation.objects.get(pk=int(sys.argv[1])),
                        actor=User.objects.get(pk=int(sys.argv[2])), text=sys.argv[3])
print("RESULT" + json.dumps({"message": message.pk}))
"""

VERIFY = r"""
from openline.accounts.models import User
from openline.consent.runs import request_verification
from django.db import transaction
with transaction.atomic():
    run = request_verification(actor=User.objects.get(username="drill-operator"))
print("RESULT" + json.dumps({"run": run.pk}))
"""

VERIFY_STALLED_AFTER = 5  # messengers_run --verify-stalled-after in the drill (300 s by default)

# Thousands of records at once (clones of the first one, dated in id order), then one seal run.
MANY_RECORDS = r"""
from django.db import connection
from openline.consent.tasks import seal_pending_records
count = int(sys.argv[1])
with connection.cursor() as cur:
    cur.execute("SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'consent_consentrecord' AND column_name NOT IN"
                " ('id', 'uuid', 'created_at')")
    columns = [row[0] for row in cur.fetchall()]
    names = ", ".join(columns)
    cur.execute(
        f"INSERT INTO consent_consentrecord (uuid, created_at, {names})"
        f" SELECT gen_random_uuid(), clock_timestamp(), {names}"
        " FROM consent_consentrecord r, generate_series(1, %s) g"
        " WHERE r.id = (SELECT min(id) FROM consent_consentrecord) ORDER BY g", [count])
seal_pending_records.enqueue()
print("RESULT" + json.dumps({"inserted": count}))
"""


class Receiver:
    """A webhook receiver that verifies signatures, dedups on webhook-id, and stalls once."""

    def __init__(self, port: int):
        self.requests: list[dict] = []
        self.accepted: dict[str, int] = {}  # webhook-id -> accepted (2xx, first time) count
        self.secret = ""
        self.lock = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                stall = outer.take(headers, body)
                if stall:
                    time.sleep(STALL)  # the worker is killed while it waits for this answer
                try:
                    self.send_response(204)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def take(self, headers: dict, body: bytes) -> bool:
        """Verify and record one request; True when it is the first one (to be stalled)."""
        from standardwebhooks import Webhook

        try:
            Webhook(self.secret).verify(body, headers)
            valid = True
        except Exception:  # noqa: BLE001 - recorded as invalid
            valid = False
        msg_id = headers.get("webhook-id", "")
        with self.lock:
            first = not self.requests
            duplicate = msg_id in self.accepted
            if valid and not duplicate:
                # Processed (stored) before answering: a receiver that dies after this point
                # still has the event; the next delivery of this id is only acknowledged.
                self.accepted[msg_id] = 1
            self.requests.append({"id": msg_id, "valid": valid, "duplicate": duplicate})
            self.lock.notify_all()
        return first

    def wait(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _fake_telegram() -> FakePlatform:
    fake = FakePlatform()
    sent = {"n": 0}

    def send(_request: Recorded) -> Answer:
        sent["n"] += 1
        body = {"ok": True, "result": {"message_id": 7000 + sent["n"], "date": 1767225600}}
        body["result"]["chat"] = {"id": 5551001, "type": "private"}
        # The first send is held open until long after its worker was killed.
        return Answer(body=body, delay=STALL if sent["n"] == 1 else 0.0)

    fake.route("POST", SEND_PATH, send)
    fake.route("POST", r"/bot[^/]+/(getMe|setWebhook|deleteWebhook)", {"ok": True, "result": True})
    return fake


def _texts(fake: FakePlatform) -> list[str]:
    out = []
    for call in fake.calls(SEND_PATH):
        try:
            out.append(str(call.json().get("text", "")))
        except ValueError:
            out.append("")
    return out


def _until(check, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise DrillFailure(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def _run_state(pg: PrivatePostgres, run_id: int) -> tuple:
    """A verification run's status, records checked and finish time."""
    rows = pg.sql(
        "SELECT status, records_checked, finished_at FROM consent_verificationrun WHERE id = %s",
        "openline",
        [run_id],
    )
    return tuple(rows[0]) if rows else ("missing", 0, None)


def _state(pg: PrivatePostgres) -> dict:
    def one(sql: str, params=None):
        rows = pg.sql(sql, "openline", params)
        return rows[0] if rows else None

    items = pg.sql(
        "SELECT o.id, o.state, o.attempts, m.text, m.delivery_state, m.delivery_error"
        " FROM conversations_outboxitem o JOIN conversations_message m ON m.id = o.message_id"
        " ORDER BY o.id",
        "openline",
    )
    return {
        "items": [
            dict(zip(("id", "state", "attempts", "text", "delivery", "error"), r, strict=True))
            for r in items
        ],
        "deliveries": pg.sql(
            "SELECT message_id, state, attempts FROM webhooks_webhookdelivery ORDER BY id",
            "openline",
        ),
        "records": one("SELECT count(*), coalesce(max(id), 0) FROM consent_consentrecord"),
        "sealed": one(
            "SELECT count(*), coalesce(max(last_record_id), 0), coalesce(sum(record_count), 0)"
            " FROM consent_sealbatch"
        ),
        "running": one(
            "SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE status = 'RUNNING'"
        )[0],
    }


def run(args) -> list[dict]:
    many = 12_000 if args.quick else 20_000
    pg = PrivatePostgres(free_port(18540, 18549)).start()
    redis = PrivateRedis(free_port(18560, 18569)).start()
    fake = _fake_telegram()
    receiver = Receiver(free_port(18590, 18599))
    from cryptography.fernet import Fernet

    env = drill_env(
        pg.create_database("openline"),
        redis.url,
        OPENLINE_TELEGRAM_API_URL=fake.base_url,
        OPENLINE_SECRETS_KEYS=Fernet.generate_key().decode(),
        OPENLINE_MESSENGER_TIMEOUT=STALL + 20,
    )
    try:
        migrate(env)
        seed = run_script(env, SETUP, receiver.url)
        receiver.secret = seed["secret"]

        # (a) + (b): three workers take the queued tasks; kill -9 them all while the Telegram
        # send and the webhook POST are both held open.
        workers = [OpenlineWorker(env).start() for _ in range(3)]
        _until(lambda: len(fake.calls(SEND_PATH)) >= 1, 60, "the Telegram send")
        _until(lambda: len(receiver.requests) >= 1, 60, "the webhook POST")
        for worker in workers:
            worker.kill()
        at_kill = _state(pg)

        # (c): thousands of records and one seal run; kill its worker after the first batches.
        run_script(env, MANY_RECORDS, str(many))
        sealer = OpenlineWorker(env).start()
        batches = at_kill["sealed"][0]
        _until(
            lambda: (
                pg.sql("SELECT count(*) FROM consent_sealbatch", "openline")[0][0] >= batches + 2
            ),
            120,
            "sealing",
        )
        sealer.kill()
        seal_kill = _state(pg)

        # (d): a verification started from the console; kill its worker once it runs.
        verify_run = run_script(env, VERIFY)["run"]
        verifier = OpenlineWorker(env).start()
        _until(lambda: _run_state(pg, verify_run)[0] != "queued", 120, "the verification")
        verifier.kill()
        verify_kill = _run_state(pg, verify_run)

        # While every worker is dead, the operator answers again.
        run_script(env, REPLY, str(seed["conversation"]), str(seed["operator"]), "Reply B: sorry")

        # Restart: one task worker and the sweeps.
        OpenlineWorker(env).start()
        OpenlineWorker(
            env,
            "messengers_run",
            (
                "--interval",
                "0.5",
                "--uncertain-after",
                str(UNCERTAIN_AFTER),
                "--verify-stalled-after",
                str(VERIFY_STALLED_AFTER),
            ),
        ).start()

        def settled() -> bool:
            s = _state(pg)
            return (
                all(i["state"] in ("sent", "uncertain", "failed") for i in s["items"])
                and all(d[1] == "delivered" for d in s["deliveries"])
                and s["sealed"][1] >= s["records"][1]
                and _run_state(pg, verify_run)[0] in ("passed", "failed", "error")
            )

        try:
            waited = _until(settled, 150, "every job to be done after the restart")
        except DrillFailure:
            waited = -1.0
        time.sleep(2)  # anything done twice would show now
        final = _state(pg)
        try:
            verify = manage(env, "consent_verify", "--all", timeout=180).strip().splitlines()
            verified, verify_line = True, verify[-1] if verify else ""
        except DrillFailure as exc:
            verified, verify_line = False, str(exc)[-400:]
    finally:
        fake.stop()
        receiver.stop()

    texts = _texts(fake)
    items = {i["text"].split(":")[0]: i for i in final["items"]}
    a, b = items.get("Reply A", {}), items.get("Reply B", {})
    a_ok = (
        texts.count("Reply A: it ships today") == 1
        and a.get("state") == "uncertain"
        and a.get("delivery") == "failed"
        and at_kill["items"][0]["state"] == "sending"
    )
    b_ok = texts.count("Reply B: sorry") == 1 and b.get("state") == "sent"
    restart_note = f"done {waited:.0f} s after the restart" if waited >= 0 else "NOT settled"
    results = [
        {
            "name": "worker crash: messenger reply in flight",
            "ok": a_ok and b_ok,
            "detail": (
                f"killed while Telegram held the send ({at_kill['items'][0]['state']});"
                f" Telegram got reply A {texts.count('Reply A: it ships today')}x, item"
                f" {a.get('state')} ('{a.get('error')}'), never resent; reply B queued while"
                f" the workers were dead: sent {texts.count('Reply B: sorry')}x, item"
                f" {b.get('state')}; {restart_note}"
            ),
            "telegram_sends": len(texts),
        }
    ]
    delivery = final["deliveries"][0] if final["deliveries"] else (None, None, None)
    same_id = [r for r in receiver.requests if r["id"] == delivery[0]]
    b_ok = (
        delivery[1] == "delivered"
        and receiver.accepted.get(delivery[0]) == 1
        and len(same_id) >= 2
        and all(r["valid"] for r in receiver.requests)
        and at_kill["deliveries"][0][1] == "sending"
    )
    results.append(
        {
            "name": "worker crash: outgoing webhook in flight",
            "ok": b_ok,
            "detail": (
                f"killed while the receiver held the POST ({at_kill['deliveries'][0][1]});"
                f" after the lease the row is {delivery[1]} ({delivery[2]} attempts recorded);"
                f" the receiver saw webhook-id {delivery[0]} {len(same_id)}x (signatures valid:"
                f" {all(r['valid'] for r in receiver.requests)}), accepted it once,"
                f" acknowledged {sum(r['duplicate'] for r in same_id)} duplicate(s)"
            ),
            "receiver_requests": len(same_id),
            "accepted": receiver.accepted.get(delivery[0], 0),
        }
    )
    records, newest = final["records"]
    batches, sealed_to, sealed_records = final["sealed"]
    c_ok = (
        verified
        and sealed_to >= newest
        and sealed_records == records
        and 0 < seal_kill["sealed"][1] < seal_kill["records"][1]
    )
    results.append(
        {
            "name": "worker crash: seal run killed midway",
            "ok": c_ok,
            "detail": (
                f"killed with records sealed up to id {seal_kill['sealed'][1]} of"
                f" {seal_kill['records'][1]}; after the restart {sealed_records} of {records}"
                f" records sealed once in {batches} batches"
                f" ({final['running']} task rows left 'running' by the killed workers);"
                f" consent_verify: {verify_line}"
            ),
            "records": records,
            "batches": batches,
        }
    )
    status, checked, _ = _run_state(pg, verify_run)
    results.append(
        {
            "name": "worker crash: registry verification killed midway",
            "ok": verify_kill[0] == "running" and verify_kill[2] is None and status == "passed",
            "detail": (
                f"killed while the run was {verify_kill[0]} ({verify_kill[1]} records checked);"
                f" queued again by the sweep after {VERIFY_STALLED_AFTER} s without progress,"
                f" then {status} with {checked} records checked"
            ),
        }
    )
    return results
