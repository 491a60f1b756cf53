"""Read-only and full database drill: captures refused with a clear 503, nothing half-written.

A private PostgreSQL, Openline under uvicorn with 2 web workers (DEBUG off).

* **Read-only**: ``ALTER SYSTEM SET default_transaction_read_only = on`` and a reload turn
  every session read-only, as a failover to a standby or a maintenance switch would. Widget
  starts answer 503 ``unavailable`` with the read-only message and ``Retry-After``; reads
  (the API's conversation list) still answer 200; ``/readyz`` says ``read_only``. Switched
  back, starts answer 201 again without restarting anything.
* **Full**: the registry's table (``consent_consentrecord``) is moved to a tablespace on a
  4 MiB tmpfs, which a filler table then fills: PostgreSQL's own "No space left on device"
  (SQLSTATE 53100) refuses the records. Starts answer 503 with the "out of space" message once
  the disk is full; dropping the filler frees it and starts answer 201 again. Mounting needs
  root; without it the same SQLSTATE is raised by a trigger and the detail says so.

After both: every 201 is stored whole, nothing is half-written (each refused start rolled back
its visitor, conversation and message along with the record).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from drills.drill_redis_outage import STAFF
from drills.harness import (
    OpenlineServer,
    PrivatePostgres,
    drill_env,
    free_port,
    run_script,
    seed_livechat_channel,
    start_body,
    widget_start,
)
from drills.outage import rounded
from drills.registry_checks import half_written, snapshot

READ_ONLY_MESSAGE = "accepts no changes"
FULL_MESSAGE = "out of space"


def _admin(pg: PrivatePostgres, *statements: str) -> None:
    # Its own session, writable whatever the cluster's default says.
    options = "-c default_transaction_read_only=off"
    with psycopg.connect(pg.url("openline"), autocommit=True, options=options) as conn:
        for statement in statements:
            conn.execute(statement)


def _starts(server: OpenlineServer, seed, run: str, tag: str, count: int) -> list:
    answers = []
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            body = start_body(seed, f"{tag} drill {run} #{i}", f"{tag}-{run}-{i}")
            started = time.monotonic()
            response = widget_start(client, server.url, seed, body)
            answers.append((response, time.monotonic() - started))
    return answers


def _until_201(server: OpenlineServer, seed, run: str, tag: str, timeout: float = 20) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        ((response, _s),) = _starts(server, seed, run, f"{tag}-back-{time.monotonic_ns()}", 1)
        if response.status_code == 201:
            return time.monotonic() - started
        time.sleep(0.2)
    return -1.0


def _clear_503(answers: list, message: str) -> bool:
    for response, _seconds in answers:
        if response.status_code != 503 or not response.headers.get("Retry-After"):
            return False
        body = response.json()
        if body.get("error") != "unavailable" or message not in body.get("message", ""):
            return False
    return bool(answers)


def _read_only(server, pg, seed, staff, run: str, count: int) -> dict:
    _admin(pg, "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
    time.sleep(1)  # every backend rereads the configuration
    try:
        refused = _starts(server, seed, run, "ro", count)
        api = httpx.get(
            f"{server.url}/api/v1/conversations",
            headers={"Authorization": f"Bearer {staff['token']}"},
            timeout=30,
        )
        ready = httpx.get(server.url + "/readyz", timeout=30)
    finally:
        _admin(pg, "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
    back = _until_201(server, seed, run, "ro")
    return {
        "clear": _clear_503(refused, READ_ONLY_MESSAGE),
        "statuses": sorted({r.status_code for r, _ in refused}),
        "slowest": max(s for _r, s in refused),
        "reads": api.status_code,
        "readyz": (ready.status_code, ready.json().get("checks", {}).get("database")),
        "back": back,
    }


def _mount_tmpfs(path: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
    )
    if done.returncode != 0:
        return False
    shutil.chown(path, "postgres", "postgres")
    return True


def _fill(pg: PrivatePostgres) -> int:
    """Insert filler rows into the tiny tablespace until PostgreSQL says the disk is full."""
    rows = 0
    with psycopg.connect(pg.url("openline"), autocommit=True) as conn:
        conn.execute("CREATE TABLE drill_filler (x text) TABLESPACE drill_tiny")
        with contextlib.suppress(psycopg.errors.DiskFull):
            while True:
                conn.execute(
                    "INSERT INTO drill_filler SELECT repeat('x', 1800) FROM generate_series(1, 50)"
                )
                rows += 50
    return rows


def _full(server, pg, seed, run: str, count: int) -> dict:
    mount = pg.root / "tiny"
    real = _mount_tmpfs(mount)
    try:
        if real:
            _admin(
                pg,
                f"CREATE TABLESPACE drill_tiny LOCATION '{mount}'",
                "ALTER TABLE consent_consentrecord SET TABLESPACE drill_tiny",
            )
            filler = _fill(pg)
        else:
            filler = 0
            _admin(
                pg,
                "CREATE FUNCTION drill_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file: No space left on device' "
                "USING ERRCODE = 'disk_full'; END $$",
                "CREATE TRIGGER drill_full BEFORE INSERT ON consent_consentrecord "
                "FOR EACH ROW EXECUTE FUNCTION drill_full()",
            )
        answers = _starts(server, seed, run, "full", count)
        # The table's last page may still hold a few records; from the first refusal on, full.
        first = next((i for i, (r, _s) in enumerate(answers) if r.status_code != 201), None)
        refused = answers[first:] if first is not None else []
        if real:
            _admin(pg, "DROP TABLE drill_filler")
        else:
            _admin(
                pg, "DROP TRIGGER drill_full ON consent_consentrecord", "DROP FUNCTION drill_full()"
            )
        back = _until_201(server, seed, run, "full")
        return {
            "real": real,
            "filler_rows": filler,
            "stored_before_full": first if first is not None else len(answers),
            "refused": len(refused),
            "clear": _clear_503(refused, FULL_MESSAGE),
            "statuses": sorted({r.status_code for r, _ in answers}),
            "back": back,
        }
    finally:
        if real:
            # The cluster must let go of the tablespace's files before the unmount.
            with contextlib.suppress(Exception):
                _admin(pg, "ALTER TABLE consent_consentrecord SET TABLESPACE pg_default")
            pg.stop()
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
            pg.start()


def run(args) -> list[dict]:
    count = 5 if args.quick else 15
    run_id = uuid.uuid4().hex[:6]
    pg = PrivatePostgres(free_port(18650, 18659)).start()
    env = drill_env(pg.create_database("openline"))
    seed = seed_livechat_channel(env, name="Read-only drill site")
    staff = run_script(env, STAFF)
    server = OpenlineServer(env, free_port(18620, 18629), workers=2).start()
    workers = sorted(server.pids())
    _starts(server, seed, run_id, "warm", 3)
    before = snapshot(pg, seed.channel_id)
    ro = _read_only(server, pg, seed, staff, run_id, count)
    full = _full(server, pg, seed, run_id, count * 4)
    after = snapshot(pg, seed.channel_id)
    half = half_written(after)
    expected = len(before["records"]) + 1 + full["stored_before_full"] + 1
    same_workers = sorted(server.pids()) == workers
    server.stop()
    return [
        {
            "name": "read-only database: captures refused with a clear 503, reads still served",
            "ok": ro["clear"]
            and ro["reads"] == 200
            and ro["readyz"] == (503, "read_only")
            and 0 <= ro["back"] < 20,
            "detail": (
                f"{count} starts on a read-only PostgreSQL: {ro['statuses']} (clear 503 with"
                f" Retry-After: {ro['clear']}, slowest {rounded(ro['slowest'])} s); the API's list"
                f" {ro['reads']}; /readyz {ro['readyz']}; writable again: 201 after"
                f" {rounded(ro['back'])} s, no restart"
            ),
            "slowest_s": rounded(ro["slowest"]),
        },
        {
            "name": "full database: captures refused with a clear 503, nothing half-written",
            "ok": full["clear"]
            and full["refused"] > 0
            and 0 <= full["back"] < 20
            and not half
            and len(after["records"]) == expected
            and same_workers,
            "detail": (
                (
                    "a real ENOSPC: the registry's table on a 4 MiB tmpfs tablespace filled with"
                    f" {full['filler_rows']} filler rows"
                    if full["real"]
                    else "simulated: SQLSTATE 53100 from a trigger (no root to mount a tmpfs)"
                )
                + f"; {full['stored_before_full']} starts fit before it was full, then"
                f" {full['refused']} refused (clear 503: {full['clear']}); space freed: 201 after"
                f" {rounded(full['back'])} s; {len(half)} half-written; records"
                f" {len(after['records'])} = {expected} expected"
            ),
            "real_disk_full": full["real"],
            "half_written": len(half),
        },
    ]
