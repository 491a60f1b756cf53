"""The registry checks every capture drill shares: what a start was, and what SQL finds after.

``Attempt`` is one widget start (its key, body and answer); ``snapshot`` reads a channel's
visitors, conversations, messages and records straight from SQL; ``half_written``,
``acknowledged_stored`` and ``stored_client_ids`` judge it; ``wait_sealed`` waits for the
sealer. Used by the crash, database outage, Redis outage and read-only drills.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from drills.harness import PrivatePostgres

LOST = (httpx.TransportError,)
RETRY_STATUSES = {502, 503, 504}


@dataclass
class Attempt:
    """One widget start: its key and body, and what came back (if anything)."""

    index: int
    key: str
    body: dict
    status: int | None = None
    answer: dict | None = None
    error: str = ""
    replayed: bool = False
    retries: list[tuple[int | None, dict | None, bool]] = field(default_factory=list)

    @property
    def client_id(self) -> str:
        return self.body["client_id"]


def snapshot(pg: PrivatePostgres, channel_id: int) -> dict:
    """The channel's visitors, conversations, messages and records, straight from SQL."""
    visitors = {
        vid: pub.hex
        for vid, pub in pg.sql(
            "SELECT id, public_id FROM conversations_visitor WHERE channel_id = %s",
            "openline",
            [channel_id],
        )
    }
    conversations = dict(
        pg.sql(
            "SELECT id, visitor_id FROM conversations_conversation WHERE channel_id = %s",
            "openline",
            [channel_id],
        )
    )
    messages = pg.sql(
        "SELECT m.id, m.conversation_id, m.client_id FROM conversations_message m"
        " JOIN conversations_conversation c ON c.id = m.conversation_id WHERE c.channel_id = %s",
        "openline",
        [channel_id],
    )
    records = pg.sql(
        "SELECT uuid, visitor_id, conversation_id FROM consent_consentrecord WHERE channel_id = %s",
        "openline",
        [channel_id],
    )
    return {
        "visitors": visitors,
        "conversations": conversations,
        "messages": messages,
        "records": {str(u): (v, c) for u, v, c in records},
    }


def half_written(snap: dict) -> list[str]:
    """Everything that looks like a start stored in part."""
    problems = []
    conv_of_visitor: dict[int, list[int]] = {}
    for cid, vid in snap["conversations"].items():
        conv_of_visitor.setdefault(vid, []).append(cid)
    messages_of: dict[int, int] = {}
    for _mid, cid, _client in snap["messages"]:
        messages_of[cid] = messages_of.get(cid, 0) + 1
    records_of_visitor: dict[int, int] = {}
    records_of_conv: dict[int, int] = {}
    for u, (vid, cid) in snap["records"].items():
        records_of_visitor[vid] = records_of_visitor.get(vid, 0) + 1
        if cid is None:
            problems.append(f"record {u} has no conversation")
            continue
        records_of_conv[cid] = records_of_conv.get(cid, 0) + 1
        if snap["conversations"].get(cid) != vid:
            problems.append(f"record {u}: its conversation is another visitor's")
    for vid in snap["visitors"]:
        if vid not in conv_of_visitor:
            problems.append(f"visitor {vid} has no conversation")
        if vid not in records_of_visitor:
            problems.append(f"visitor {vid} has no consent record")
    for cid in snap["conversations"]:
        if messages_of.get(cid, 0) != 1:
            problems.append(f"conversation {cid} has {messages_of.get(cid, 0)} messages")
        if records_of_conv.get(cid, 0) != 1:
            problems.append(f"conversation {cid} has {records_of_conv.get(cid, 0)} records")
    return problems


def acknowledged_stored(snap: dict, acknowledged: list[Attempt]) -> list[str]:
    """Each 201 answer names a record, visitor, conversation and message that are stored."""
    missing = []
    message_ids = {mid: (cid, client) for mid, cid, client in snap["messages"]}
    for a in acknowledged:
        answer = a.answer or {}
        stored = snap["records"].get(str(answer.get("record")))
        conversation = (answer.get("conversation") or {}).get("id")
        message = (answer.get("message") or {}).get("id")
        if stored is None:
            missing.append(f"#{a.index}: record {answer.get('record')} is not in the registry")
        elif snap["visitors"].get(stored[0]) != answer.get("visitor"):
            missing.append(f"#{a.index}: the record's visitor is not the one answered")
        elif stored[1] != conversation:
            missing.append(f"#{a.index}: the record's conversation is not the one answered")
        elif message_ids.get(message) != (conversation, a.client_id):
            missing.append(f"#{a.index}: message {message} is not stored as answered")
    return missing


def stored_client_ids(snap: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _mid, _cid, client in snap["messages"]:
        counts[client] = counts.get(client, 0) + 1
    return counts


def record_of_client(snap: dict, client_id: str) -> str | None:
    convs = {cid for _mid, cid, client in snap["messages"] if client == client_id}
    found = [u for u, (_v, cid) in snap["records"].items() if cid in convs]
    return found[0] if len(found) == 1 else None


def wait_sealed(pg: PrivatePostgres, timeout: float = 60) -> tuple[int, int]:
    """Wait until the sealer covered the newest record; return (records, sealed up to id)."""
    deadline = time.monotonic() + timeout
    while True:
        newest = pg.sql(
            "SELECT coalesce(max(id), 0), count(*) FROM consent_consentrecord", "openline"
        )
        sealed = pg.sql(
            "SELECT coalesce(max(last_record_id), 0) FROM consent_sealbatch", "openline"
        )
        if sealed[0][0] >= newest[0][0] or time.monotonic() > deadline:
            return newest[0][1], sealed[0][0] - newest[0][0]
        time.sleep(0.5)
