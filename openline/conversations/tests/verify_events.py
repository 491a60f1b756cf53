"""``verify_action``: run an action and check every realtime event it publishes.

In the spirit of Zulip's ``verify_action``: the action runs inside the test's transaction,
its on-commit callbacks run as a commit would run them, and every event that reaches the
channel-layer boundary (``events.send_now``) is recorded, sent on for real, and checked:

- its type is the next one of ``expected_types`` (one entry per publication; a publication
  goes to the operators' group, the client's group or both, always with one type);
- it is plain JSON (what the websockets send) and matches its schema in
  ``openline.conversations.event_schemas`` for the audience its group reaches: a missing
  key, an unknown key or a wrong type fails;
- it was not published before the commit, unless its schema says it is ephemeral.

Use it from any test module: ``from openline.conversations.tests.verify_events import
verify_action``. New event types are described with ``event_schemas.register``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from unittest import mock

from django.test import TestCase

from openline.conversations import event_schemas, events

T = TypeVar("T")


@dataclass(frozen=True)
class Published:
    """One event as one group received it."""

    group: str
    audience: str  # event_schemas.OPERATORS or event_schemas.VISITOR
    event: dict
    before_commit: bool


@dataclass
class Verified(Generic[T]):
    """What the action returned and every event it published, in order."""

    result: T
    events: list[Published] = field(default_factory=list)

    def to(self, audience: str) -> list[dict]:
        """Return the events ``audience`` received, in order (the administrators' copy once)."""
        return [
            p.event
            for p in self.events
            if p.audience == audience and p.group != events.ADMINISTRATORS
        ]

    def of_type(self, kind: str) -> list[Published]:
        """Return the deliveries of events of type ``kind``."""
        return [
            p for p in self.events if p.event["type"] == kind and p.group != events.ADMINISTRATORS
        ]


def verify_action(action: Callable[[], T], *, expected_types: Sequence[str]) -> Verified[T]:
    """Run ``action`` as if committed; check its events' order, shapes and timing; return them."""
    committed = False
    publications: list[tuple[bool, list[tuple[str, dict, str]]]] = []
    send_for_real = events.send_now

    def record(groups: list[tuple[str, dict]], **kwargs) -> None:
        # As JSON text, as the websockets send it (and a copy the layer cannot change).
        publications.append((not committed, [(g, e, json.dumps(e)) for g, e in groups]))
        send_for_real(groups, **kwargs)

    with (
        mock.patch.object(events, "send_now", record),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        result = action()
        committed = True
    verified: Verified[T] = Verified(result=result)
    types: list[str] = []
    for before_commit, groups in publications:
        sent = [(group, json.loads(text)) for group, _, text in groups]
        for _, original, text in groups:
            assert json.loads(text) == original, (
                f"not plain JSON (tuples, non-string keys): {original}"
            )
        # Administrators follow every channel through one group: they get what its operators get.
        channel_texts = [t for g, _, t in groups if g.startswith(events.CHANNEL_GROUP_PREFIX)]
        admin_texts = [t for g, _, t in groups if g == events.ADMINISTRATORS]
        assert channel_texts == admin_texts, "an operators' event did not reach the administrators"
        kinds = {event.get("type") if isinstance(event, dict) else None for _, event in sent}
        assert len(kinds) == 1, f"one publication carries several event types: {sorted(kinds)}"
        for group, event in sent:
            audience = event_schemas.audience_of(group)
            schema = event_schemas.check_event(event, audience=audience)
            assert not (before_commit and schema.after_commit), (
                f"{schema.type!r} was published before the transaction committed"
            )
            verified.events.append(Published(group, audience, event, before_commit))
        types.append(kinds.pop())
    assert types == list(expected_types), f"published {types}, expected {list(expected_types)}"
    return verified
