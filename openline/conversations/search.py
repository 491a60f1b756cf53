"""Search across the conversations a staff user may see: by client and by message text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import OuterRef, Q, Subquery

from openline.conversations import naming
from openline.conversations.models import Conversation, Message

_SPACES = re.compile(r"\s+")
MAX_QUERY = 200
SNIPPET = 60


@dataclass(frozen=True)
class Snippet:
    """A piece of matching text, split so a template can mark the match (and escape all three)."""

    before: str
    match: str
    after: str


def snippet(text: str, query: str, width: int = SNIPPET) -> Snippet | None:
    """Return the part of ``text`` around the first match of ``query`` (case-insensitive)."""
    # Matched on the original text: lower-casing first would shift every position after a
    # character whose lower case is longer ("İ" becomes "i̇") and mark the wrong letters.
    found = re.search(re.escape(query), text, re.IGNORECASE) if query else None
    if found is None:
        return None
    at, stop = found.span()
    start, end = max(0, at - width), min(len(text), stop + width)
    before = ("…" if start else "") + text[start:at]
    after = text[stop:end] + ("…" if end < len(text) else "")
    return Snippet(_squash(before), text[at:stop], _squash(after))


def _squash(text: str) -> str:
    # Line breaks and runs of spaces become one space; the spaces next to the match stay.
    return _SPACES.sub(" ", text)


def clean_query(raw) -> str:
    """Return the search text from a request parameter (trimmed, bounded)."""
    return " ".join(str(raw or "").split())[:MAX_QUERY]


def search_conversations(
    visible, query: str, *, limit: int = 50
) -> list[tuple[Conversation, Snippet | None]]:
    """Return (conversation, snippet) for ``visible`` conversations that match ``query``.

    A conversation matches when its client's name, e-mail or phone does (the CRM's, through
    ``naming``, or the visitor's own; at least ``naming.MIN_QUERY`` characters, phones by
    ``naming.MIN_PHONE_DIGITS`` digits) or when one of its messages contains the text. Newest
    activity first; the snippet is the newest matching message, if any. Two queries
    whatever the number of matches: the page, and the snippets of its conversations.
    """
    query = clean_query(query)
    if not query:
        return []
    # The clients are matched in the database (a subquery), never as a list of ids; erased
    # clients keep no personal data to match on (``visitors_matching`` leaves them out).
    people = Q(visitor_id__in=naming.visitors_matching(query))
    matching_messages = Message.objects.filter(text__icontains=query)
    by_text = matching_messages.filter(conversation__in=visible.values("pk")).values(
        "conversation_id"
    )
    conversations = list(
        visible.filter(people | Q(pk__in=by_text)).order_by("-last_message_at", "-id")[:limit]
    )
    if not conversations:
        return []
    # One query for the snippets: the newest matching message of each conversation on the
    # page, and only that one (not every matching message of every conversation).
    newest = (
        matching_messages.filter(conversation_id=OuterRef("pk")).order_by("-id").values("id")[:1]
    )
    hits = Conversation.objects.filter(pk__in=[c.pk for c in conversations]).annotate(
        hit=Subquery(newest)
    )
    texts = dict(
        Message.objects.filter(pk__in=hits.values("hit")).values_list("conversation_id", "text")
    )
    return [(c, snippet(texts[c.pk], query) if c.pk in texts else None) for c in conversations]
