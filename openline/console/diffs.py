"""Readable differences for the consent history: field by field, long texts word by word.

History rows store ``before`` and ``after`` as JSON. This turns them into a list of changed
fields with a human label and, for long texts, a word diff. Values stay plain text: templates
escape them (nothing here builds HTML).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q

from openline.consent.display import SETTING_LABELS, show
from openline.consent.models import AgreementText, AuditAction, AuditEvent

LABELS = {
    "consent_enabled": "Send warning about collecting personal data",
    **SETTING_LABELS,
    "name": "Name",
    "is_active": "Active",
    "version": "Version",
    "allow_html": "HTML allowed",
    "public_code": "Public page code",
}
# A text longer than this (or with a line break) is shown as a word diff.
LONG_TEXT = 60
_TOKENS = re.compile(r"\s+|[^\s]+")


@dataclass
class Segment:
    kind: str  # "same", "del" or "ins"
    text: str


@dataclass
class Change:
    key: str
    label: str
    before: str
    after: str
    kind: str  # "added", "removed" or "changed"
    words: list[Segment] = field(default_factory=list)


def label_for(key: str) -> str:
    """Return a person's name for a flattened key (``texts.en`` → "Text hash (en)")."""
    head, _, rest = key.partition(".")
    if head == "texts" and rest:
        return f"Text hash ({rest})"
    if head == "text" and rest:
        return f"Text ({rest})"
    if key in LABELS:
        return LABELS[key]
    return key.replace("_", " ").replace(".", " · ").capitalize()


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Flatten nested dicts into dotted keys; lists and scalars stay values."""
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value} if prefix else {}


def is_long(*texts: str) -> bool:
    """Tell whether a value is better read as a word diff than side by side.

    Long wording is; a long single token (a hash, a code) is not: it has no words to align.
    """
    return any((len(t) > LONG_TEXT and any(c.isspace() for c in t)) or "\n" in t for t in texts)


def word_diff(old: str, new: str) -> list[Segment]:
    """Diff two texts word by word (whitespace kept); merge neighbouring pieces of one kind."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    segments: list[Segment] = []

    def add(kind: str, text: str) -> None:
        if not text:
            return
        if segments and segments[-1].kind == kind:
            segments[-1].text += text
        else:
            segments.append(Segment(kind, text))

    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            add("same", "".join(a[i1:i2]))
        else:
            add("del", "".join(a[i1:i2]))
            add("ins", "".join(b[j1:j2]))
    return segments


def changes(before, after) -> list[Change]:
    """Return the fields that differ between two snapshots, in a stable order."""
    old, new = flatten(before or {}), flatten(after or {})
    found: list[Change] = []
    for key in list(dict.fromkeys([*new, *old])):
        in_old, in_new = key in old, key in new
        if in_old and in_new and old[key] == new[key]:
            continue
        was, now = show(old.get(key)), show(new.get(key))
        kind = "changed" if in_old and in_new else ("added" if in_new else "removed")
        change = Change(key=key, label=label_for(key), before=was, after=now, kind=kind)
        plain_old = old.get(key) if isinstance(old.get(key), str) else ""
        plain_new = new.get(key) if isinstance(new.get(key), str) else ""
        if is_long(str(plain_old or ""), str(plain_new or "")):
            change.words = word_diff(str(plain_old or ""), str(plain_new or ""))
        found.append(change)
    return found


def _version_texts(events: Iterable[AuditEvent]) -> dict[tuple[int, int], dict[str, str]]:
    """Fetch the wording of every version the events name, in one query."""
    wanted: set[tuple[int, int]] = set()
    for event in events:
        if event.action != AuditAction.AGREEMENT_VERSION or not event.agreement_id:
            continue
        for snapshot in (event.before, event.after):
            if isinstance(snapshot, dict) and isinstance(snapshot.get("version"), int):
                wanted.add((event.agreement_id, snapshot["version"]))
    if not wanted:
        return {}
    condition = Q()
    for agreement_id, number in wanted:
        condition |= Q(version__agreement_id=agreement_id, version__number=number)
    texts: dict[tuple[int, int], dict[str, str]] = {}
    rows = AgreementText.objects.filter(condition).values_list(
        "version__agreement_id", "version__number", "language", "text"
    )
    for agreement_id, number, language, text in rows:
        texts.setdefault((agreement_id, number), {})[language] = text
    return texts


def event_changes(events: list[AuditEvent]) -> dict[int, list[Change]]:
    """Return each history row's changes; new consent versions also diff their wording."""
    texts = _version_texts(events)
    result: dict[int, list[Change]] = {}
    for event in events:
        before, after = event.before, event.after
        if event.action == AuditAction.AGREEMENT_VERSION and event.agreement_id:
            before = dict(before or {})
            after = dict(after or {})
            for snapshot in (before, after):
                number = snapshot.get("version")
                if isinstance(number, int):
                    snapshot["text"] = texts.get((event.agreement_id, number), {})
        result[event.pk] = changes(before, after)
    return result
