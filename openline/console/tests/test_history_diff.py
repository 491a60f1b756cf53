"""The consent history shows what changed field by field, long texts as an escaped word diff."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.template.loader import render_to_string
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.console import diffs
from openline.openchannels.services import update_consent_settings

HISTORY = "/console/consents/history/"


def _old(segments) -> str:
    return "".join(s.text for s in segments if s.kind != "ins")


def _new(segments) -> str:
    return "".join(s.text for s in segments if s.kind != "del")


odd_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80
) | st.sampled_from(["<script>alert(1)</script>", "a & b", "\"quoted\" 'x'", "\u202eevil", "\n\n"])


@given(odd_text, odd_text)
def test_a_word_diff_rebuilds_both_texts(old, new):
    segments = diffs.word_diff(old, new)
    assert _old(segments) == old and _new(segments) == new
    assert all(s.kind in {"same", "del", "ins"} and s.text for s in segments)


def test_only_changed_fields_are_listed_with_labels():
    found = diffs.changes(
        {"consent_enabled": False, "withdraw_keywords": ["stop"], "texts": {"en": "aa"}},
        {"consent_enabled": True, "withdraw_keywords": ["stop"], "texts": {"en": "bb", "de": "cc"}},
    )
    assert [(c.label, c.before, c.after, c.kind) for c in found] == [
        ("Send warning about collecting personal data", "No", "Yes", "changed"),
        ("Text hash (en)", "aa", "bb", "changed"),
        ("Text hash (de)", "—", "cc", "added"),
    ]


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(old=odd_text, new=odd_text)
def test_rendered_changes_are_escaped(old, new):
    event = SimpleNamespace(
        pk=1,
        created_at=timezone.now(),
        actor=None,
        actor_label="someone",
        get_action_display=lambda: "Changed",
        agreement_id=None,
        channel_id=None,
        subject_label="<i>subject</i>",
        before={"messenger_warning_text": old + " " * 70},
        after={"messenger_warning_text": new + "<script>x</script>"},
    )
    html = render_to_string(
        "consent/audit_list.html",
        {"events": [event], "changes": {1: diffs.changes(event.before, event.after)}},
    )
    assert "<script>x</script>" not in html and "<i>subject</i>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


@pytest.mark.django_db
def test_the_history_page_shows_before_and_after_per_field(auditor_client, administrator, channel):
    long_old = "Reply YES to agree that we keep your messages. " * 2
    for text in (long_old, long_old.replace("keep", "store <b>safely</b>")):
        update_consent_settings(
            actor=administrator,
            channel=channel,
            consent_enabled=True,
            agreement=channel.agreement,
            messenger_warning_text=text,
        )
    page = auditor_client.get(HISTORY).text
    assert 'data-field="messenger_warning_text"' in page
    assert "<del>keep</del>" in page
    assert "<ins>store &lt;b&gt;safely&lt;/b&gt;</ins>" in page
    assert "<summary>Show raw JSON</summary>" in page


@pytest.mark.django_db
def test_a_new_consent_version_diffs_its_wording(auditor_client, administrator, agreement):
    from openline.consent import services

    services.update_agreement(
        actor=administrator,
        agreement=agreement,
        texts={
            "en": "We process your name, messages and e-mail address to answer you.\n"
            "See https://example.com/privacy"
        },
    )
    page = auditor_client.get(HISTORY, {"consent": agreement.pk}).text
    assert "Text (en)" in page and "Version" in page
    assert "<del>IP</del>" in page and "<ins>e-mail</ins>" in page
