"""Prefilling Save to CRM: the name, e-mail and phone the client gave in the conversation.

The visitor's own fields come first (a messenger profile's name, a phone shared through the
platform); whatever is still missing is looked for in the client's messages, never in the
operators'. Nothing here is saved: the operator sees what was found, and where, and edits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from openline.conversations.models import Message, SenderKind
from openline.crm.normalize import normalize_email, normalize_phone

# Enough to cover a long chat; older messages rarely hold what the newest ones do not.
MESSAGES = 200
MAX_TEXT = 5000
MAX_PHONE = 40
MAX_NAME = 200

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+", re.UNICODE)
# A run of digits with + ( ) - and spaces between; 7 to 15 digits are checked afterwards.
PHONE = re.compile(r"(?<![\w+])(?:\+|\(\+?)?\d(?:[ \-()]{0,3}\d){5,20}\)?(?![\w@])")
# "Order 12345678", "invoice #4711…": numbers that are not phone numbers.
NOT_PHONE_BEFORE = re.compile(
    r"(?:order|invoice|ticket|tracking|account|customer|bestellung|rechnung|kunden|auftrag|"
    r"#)\W{0,3}$",
    re.IGNORECASE,
)
DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$|^\d{1,2}-\d{1,2}-\d{2,4}$")
_LETTERS = r"[^\W\d_]"
WORD = re.compile(rf"{_LETTERS}(?:{_LETTERS}|['’\-](?={_LETTERS}))*")
# Phrases that introduce the client's own name. "Explicit" ones name nothing else, so a
# lower-case name ("my name is jane") is taken too; "I am"/"I'm" only with capital letters.
EXPLICIT = re.compile(
    r"\b(?:my name is|my name's|name is|mein name ist|ich heiße|ich heisse|je m'appelle|"
    r"je m’appelle|me llamo|mi nombre es|mi chiamo|меня зовут)\s+",
    re.IGNORECASE,
)
INTRODUCTION = re.compile(
    r"(?:^|(?<=[\s,.!?;:]))(?:i am|i'm|i’m|ich bin|this is)\s+", re.IGNORECASE
)
NAME_WORDS = 3
# Words that follow "I am" / "my name is" without being a name.
_NOT_NAMES = """a an and the i ich im in at on from aus with mit to my mein meine here hier not nicht
    but aber so also auch just only very sehr still noch ok okay please bitte thanks danke
    sorry looking interested writing calling back new neu happy glad fine good well sure
    trying going having waiting hoping wondering customer kunde client german english british
    american french spanish italian russian polish turkish dutch swiss austrian deutsch"""
NOT_NAMES = frozenset(_NOT_NAMES.split())


@dataclass(frozen=True)
class Finding:
    """A value found for one field, and where it came from (shown to the operator)."""

    value: str
    source: str
    message_id: int | None = None


@dataclass
class Prefill:
    """What Save to CRM starts with: one value per field, plus every other candidate seen."""

    name: Finding | None = None
    email: Finding | None = None
    phone: Finding | None = None
    others: dict[str, list[str]] = field(default_factory=dict)

    def initial(self) -> dict[str, str]:
        return {
            "name": self.name.value if self.name else "",
            "email": self.email.value if self.email else "",
            "phone": self.phone.value if self.phone else "",
        }

    def also_mentioned(self) -> list[tuple[str, str]]:
        """Return (field label, "a, b") for the other candidates, for the form's note."""
        labels = {"name": "Name", "email": "E-mail", "phone": "Phone"}
        return [(labels[key], ", ".join(values)) for key, values in self.others.items()]

    def found_in_messages(self) -> list[tuple[str, Finding]]:
        """Return the (field label, finding) pairs taken from messages, for the form's note."""
        labels = (("Name", self.name), ("E-mail", self.email), ("Phone", self.phone))
        return [(label, f) for label, f in labels if f is not None and f.message_id is not None]


def emails_in(text: str) -> list[str]:
    """Return the valid e-mail addresses in ``text``, in order, without duplicates."""
    found: list[str] = []
    for match in EMAIL.finditer(text[:MAX_TEXT]):
        candidate = match.group(0).rstrip(".")
        try:
            normalize_email(candidate)
        except ValidationError:
            continue
        if candidate.lower() not in (f.lower() for f in found):
            found.append(candidate)
    return found


def phones_in(text: str) -> list[str]:
    """Return the phone numbers (7 to 15 digits) in ``text`` as written, in order."""
    # E-mail addresses contain digits too; take them out first.
    text = EMAIL.sub(" ", text[:MAX_TEXT])
    found: list[str] = []
    seen: set[str] = set()
    for match in PHONE.finditer(text):
        candidate = match.group(0).strip()
        if candidate.count("(") != candidate.count(")"):
            candidate = candidate.strip("()")
        before = text[max(0, match.start() - 20) : match.start()]
        if DATE.match(candidate) or len(candidate) > MAX_PHONE or NOT_PHONE_BEFORE.search(before):
            continue
        try:
            digits = normalize_phone(candidate)
        except ValidationError:
            continue
        if 7 <= len(digits) <= 15 and digits not in seen:
            seen.add(digits)
            found.append(candidate)
    return found


def _words_after(text: str, *, capitals_only: bool) -> str:
    words: list[str] = []
    position = 0
    while len(words) < NAME_WORDS:
        gap = re.match(r"[ \t]+" if words else r"", text[position:])
        if gap is None:
            break
        match = WORD.match(text, position + gap.end())
        if match is None:
            break
        word = match.group(0)
        if word.casefold() in NOT_NAMES:
            break
        capital = word[0].isupper()
        if capitals_only and not capital:
            break
        # After a capitalised first word, a lower-case one ends the name ("Jane and I").
        if words and words[0][0].isupper() and not capital:
            break
        words.append(word)
        position = match.end()
    if not words:
        return ""
    name = " ".join(words)
    return name if name[0].isupper() else name.title()


def names_in(text: str) -> list[str]:
    """Return the names the client gives for themselves in ``text`` ("my name is …", "I am …")."""
    text = text[:MAX_TEXT]
    found: list[str] = []
    for pattern, capitals_only in ((EXPLICIT, False), (INTRODUCTION, True)):
        for match in pattern.finditer(text):
            name = _words_after(text[match.end() :], capitals_only=capitals_only)[:MAX_NAME]
            if name and name.casefold() not in (f.casefold() for f in found):
                found.append(name)
    return found


def _fuller_names(names: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    # "Jane" and later "Jane Doe" are one name, not two: keep the fuller one.
    return {
        key: value
        for key, value in names.items()
        if not any(other != key and other.startswith(key + " ") for other in names)
    }


def prefill_for(conversation) -> Prefill:
    """Return the Save to CRM values for ``conversation``: profile first, then client messages."""
    visitor = conversation.visitor
    result = Prefill()
    if visitor.erased_at:
        return result
    profile = "the client's messenger profile" if visitor.external_id else "the client's profile"
    if visitor.name:
        result.name = Finding(visitor.name, profile)
    if visitor.email:
        result.email = Finding(visitor.email, profile)
    if visitor.phone:
        result.phone = Finding(visitor.phone, profile)
    messages = list(
        Message.objects.filter(conversation=conversation, sender=SenderKind.VISITOR)
        .order_by("-id")
        .values_list("id", "text")[:MESSAGES]
    )
    names: dict[str, tuple[str, int]] = {}
    emails: dict[str, tuple[str, int]] = {}
    phones: dict[str, tuple[str, int]] = {}
    # Oldest first, so a later message's value wins for e-mail and phone (a correction).
    for message_id, text in reversed(messages):
        for name in names_in(text):
            names.setdefault(name.casefold(), (name, message_id))
        for email in emails_in(text):
            emails.pop(email.lower(), None)
            emails[email.lower()] = (email, message_id)
        for phone in phones_in(text):
            phones.pop(normalize_phone(phone), None)
            phones[normalize_phone(phone)] = (phone, message_id)
    names = _fuller_names(names)
    if result.name is None and len(names) == 1:
        # Only an unambiguous name: two different ones could be the client's and someone else's.
        (value, message_id), *_ = names.values()
        result.name = Finding(value, "the client's message", message_id)
    if result.email is None and emails:
        value, message_id = list(emails.values())[-1]
        result.email = Finding(value, "the client's message", message_id)
    if result.phone is None and phones:
        value, message_id = list(phones.values())[-1]
        result.phone = Finding(value, "the client's message", message_id)
    chosen = result.initial()
    result.others = {
        key: [v for v, _ in found.values() if v != chosen[key]]
        for key, found in (("name", names), ("email", emails), ("phone", phones))
        if any(v != chosen[key] for v, _ in found.values())
    }
    return result
