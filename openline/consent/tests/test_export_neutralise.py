"""The consent name is neutralised in CSV exports like every other free-text column.

An administrator names the consent; a spreadsheet opening the auditor's export would run a
name that starts like a formula. Both export paths are covered: Python's csv writer (SQLite)
and PostgreSQL's COPY.
"""

from __future__ import annotations

import csv
import io

import pytest

from openline.consent.models import Agreement
from openline.consent.services import create_agreement

FORMULA_NAMES = [
    '=HYPERLINK("http://evil.example","x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTabbed",
    "\rReturned",
]


def _export_rows(client) -> list[dict]:
    response = client.get("/console/obtained-consents/export/?format=csv")
    assert response.status_code == 200 and response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _records_with_consent_names(administrator, give) -> None:
    for number, name in enumerate(FORMULA_NAMES):
        agreement = create_agreement(
            actor=administrator,
            name=f"Consent {number}",
            text="We keep your messages.",
            allow_html=False,
        )
        # The form strips leading whitespace; a name written by another path may keep it.
        Agreement.objects.filter(pk=agreement.pk).update(name=name)
        agreement.refresh_from_db()
        assert agreement.name == name
        give(agreement=agreement)


def _check(rows: list[dict]) -> None:
    names = sorted(row["consent"] for row in rows)
    assert names == sorted("'" + name for name in FORMULA_NAMES)


def test_csv_export_neutralises_formula_consent_names(auditor_client, administrator, give):
    _records_with_consent_names(administrator, give)
    _check(_export_rows(auditor_client))


@pytest.mark.postgres
def test_postgresql_copy_export_neutralises_formula_consent_names(
    postgres_only, auditor_client, administrator, give
):
    _records_with_consent_names(administrator, give)
    _check(_export_rows(auditor_client))


def test_plain_consent_name_is_exported_unchanged(auditor_client, give, channel):
    give()
    assert [row["consent"] for row in _export_rows(auditor_client)] == [channel.agreement.name]
