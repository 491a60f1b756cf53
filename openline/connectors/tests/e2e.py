"""A running Openline for end-to-end messenger tests: server + worker processes, fake platform.

One stack per test module (starting processes costs seconds): the web server (uvicorn), the
task worker (db_worker) and, when asked, ``messengers_run``, all on the test database and
pointed at one loopback fake platform server answering every platform API.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

from openline.connectors.registry import connector_secrets, webhook_url
from openline.connectors.tests.helpers import answer_platform_apis, connect, deliver
from openline.testing.fake_platforms import FakePlatform, fixture
from openline.testing.server_process import (
    ServerProcess,
    WorkerProcess,
    current_database_url,
    start_server,
    start_worker,
)

FIRST_MESSAGE = {
    "telegram": "telegram_update_text.json",
    "whatsapp": "whatsapp_text_message.json",
    "facebook": "messenger_text_message.json",
    "viber": "viber_message_text.json",
}


def platform_env(fake: FakePlatform) -> dict[str, str]:
    """Environment pointing every platform base URL at the fake platform server."""
    from openline.core.secrets import current_keys

    return {
        "OPENLINE_TELEGRAM_API_URL": fake.base_url,
        "OPENLINE_GRAPH_API_URL": fake.base_url + "/v21.0",
        "OPENLINE_VIBER_API_URL": fake.base_url,
        "OPENLINE_MESSENGER_TIMEOUT": "5",
        # The processes must read the credentials this test process encrypts.
        "OPENLINE_SECRETS_KEYS": ",".join(key.decode() for key in current_keys()),
    }


@dataclass
class Stack:
    fake: FakePlatform
    servers: list[ServerProcess]
    workers: list[WorkerProcess] = field(default_factory=list)
    var_dir: Path | None = None
    env: dict = field(default_factory=dict)

    @property
    def server(self) -> ServerProcess:
        return self.servers[0]

    def start_worker(self, command: str, *args: str) -> WorkerProcess:
        worker = start_worker(
            database_url=current_database_url(),
            var_dir=self.var_dir,
            command=command,
            args=args,
            env=self.env,
        )
        self.workers.append(worker)
        return worker

    def ensure_running(self) -> None:
        """Restart a worker that died (a test's flush may delete the task it was running)."""
        for i, worker in enumerate(self.workers):
            if worker.process.poll() is not None:
                self.workers[i] = start_worker(
                    database_url=current_database_url(),
                    var_dir=self.var_dir,
                    command=worker.command,
                    args=worker.args,
                    env=self.env,
                )

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until the workers have no task running or due (before the test's data goes)."""
        from django_tasks_db.models import DBTaskResult

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = DBTaskResult.objects.running().exists() or DBTaskResult.objects.ready().exists()
            if not busy:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        for process in [*self.workers, *self.servers]:
            process.stop()
        self.fake.stop()


def start_stack(var_dir: Path, *, servers: int = 1, worker: bool = True) -> Stack:
    """Start the fake platform, ``servers`` web servers and (optionally) one db_worker."""
    fake = FakePlatform()
    answer_platform_apis(fake)
    env = platform_env(fake)
    started: list[ServerProcess] = []
    stack = Stack(fake, started, var_dir=var_dir, env=env)
    try:
        for _ in range(servers):
            started.append(
                start_server(database_url=current_database_url(), var_dir=var_dir, env=env)
            )
        if worker:
            stack.start_worker("db_worker", "--interval", "0.1")
    except Exception:
        stack.stop()
        raise
    return stack


def use_fake_platform(settings, fake: FakePlatform) -> None:
    """Point this test process (which connects the messengers) at the fake platform too."""
    settings.OPENLINE_TELEGRAM_API_URL = fake.base_url
    settings.OPENLINE_GRAPH_API_URL = fake.base_url + "/v21.0"
    settings.OPENLINE_VIBER_API_URL = fake.base_url


class Messengers(dict):
    """The channel's connectors against a stack, connected on first use."""

    def __init__(self, stack: Stack, channel, actor) -> None:
        super().__init__()
        self.stack, self.channel, self.actor = stack, channel, actor

    def __missing__(self, kind: str):
        self[kind] = connect(self.channel, kind, base=self.stack.server.url, actor=self.actor)
        return self[kind]

    def send(self, kind: str, payload, *, server: ServerProcess | None = None, **kwargs):
        """Deliver a signed webhook body for ``kind`` to a server; return the response."""
        connector = self[kind]
        url = webhook_url(connector, (server or self.stack.server).url)
        return deliver(url, kind, connector_secrets(connector), payload, **kwargs)


# ----- payload variations: the next message of the same client -----------------------------


def first_message(kind: str) -> dict:
    return fixture(FIRST_MESSAGE[kind])


def next_message(kind: str, text: str, n: int = 1) -> dict:
    """The same client's ``n``-th next message (a new platform id) saying ``text``."""
    payload = copy.deepcopy(first_message(kind))
    # Written now (plus a moment): only a message sent after the warning went out confirms it.
    now = time.time() + 2
    if kind == "telegram":
        payload["update_id"] += n
        payload["message"]["message_id"] += n
        payload["message"]["text"] = text
        payload["message"]["date"] = int(now)
    elif kind == "whatsapp":
        msg = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        msg["id"] = f"wamid.NEXT{n:04d}"
        msg["text"]["body"] = text
        msg["timestamp"] = str(int(now))
    elif kind == "facebook":
        payload["entry"][0]["messaging"][0]["timestamp"] = int(now * 1000)
        msg = payload["entry"][0]["messaging"][0]["message"]
        msg["mid"] = f"m_NEXT{n:04d}"
        msg["text"] = text
    else:
        payload["message_token"] += n
        payload["message"]["text"] = text
        payload["timestamp"] = int(now * 1000)
    return payload
