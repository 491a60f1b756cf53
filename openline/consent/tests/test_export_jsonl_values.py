"""JSON Lines exports carry free-text values unchanged on both databases; CSV neutralises them.

A leading quote keeps a spreadsheet from running a formula: a CSV concern. A JSON Lines
consumer is a program, which must get the value as recorded, whichever database serves it.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from openline.consent.models import Agreement

# The two databases build exports differently (Python rows vs. SQL): CI runs this on both.
pytestmark = pytest.mark.dbspecific

FORMULA = '=HYPERLINK("http://evil.example","x")'


def _export(client, fmt: str) -> str:
    response = client.get(f"/console/obtained-consents/export/?format={fmt}")
    assert response.status_code == 200 and response.streaming
    return b"".join(response.streaming_content).decode()


def _record_with_formulas(give, channel, visitor) -> None:
    visitor.name = "-Vera"
    visitor.save(update_fields=["name"])
    Agreement.objects.filter(pk=channel.agreement_id).update(name="@Consent")
    give(
        source_id="+42",
        source_label=FORMULA,
        address="https://example.com/=x",
        user_agent="=cmd|' /C calc'!A0",
    )


def _check_jsonl_unchanged(text: str) -> None:
    (row,) = [json.loads(line) for line in text.splitlines()]
    assert row["user"] == "-Vera"
    assert row["consent"] == "@Consent"
    assert row["source_id"] == "+42"
    assert row["source"] == FORMULA
    assert row["address"] == "https://example.com/=x"
    assert row["user_agent"] == "=cmd|' /C calc'!A0"


def _check_csv_neutralised(text: str) -> None:
    (row,) = list(csv.DictReader(io.StringIO(text, newline="")))
    assert row["user"] == "'-Vera"
    assert row["consent"] == "'@Consent"
    assert row["source_id"] == "'+42"
    assert row["source"] == "'" + FORMULA
    assert row["user_agent"] == "'=cmd|' /C calc'!A0"


def test_jsonl_export_keeps_values_and_csv_neutralises_them(auditor_client, give, channel, visitor):
    _record_with_formulas(give, channel, visitor)
    _check_jsonl_unchanged(_export(auditor_client, "jsonl"))
    _check_csv_neutralised(_export(auditor_client, "csv"))


@pytest.mark.postgres
def test_postgresql_jsonl_export_keeps_values_and_csv_neutralises_them(
    postgres_only, auditor_client, give, channel, visitor
):
    _record_with_formulas(give, channel, visitor)
    _check_jsonl_unchanged(_export(auditor_client, "jsonl"))
    _check_csv_neutralised(_export(auditor_client, "csv"))
