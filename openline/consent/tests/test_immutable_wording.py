"""The wording a client saw is as immutable as the record that points at it.

Versions and texts refuse change in the ORM and in the database (raw SQL through a
connection Django does not manage, foreign keys off on SQLite), agreements are never
deleted, and the record page recomputes the text's hash instead of trusting a column.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from openline.consent import services, triggers
from openline.consent.integrity import (
    COLUMN_ALTERED,
    TEXT_ALTERED,
    TEXT_MISSING,
    check_record_text,
    check_text,
    text_digest,
)
from openline.consent.models import (
    Agreement,
    AgreementText,
    AgreementVersion,
    AppendOnlyError,
    ConsentRecord,
)

FORGED = "<p>We may sell your data to anyone.</p>"

# ----- ORM ----------------------------------------------------------------------------------


def test_orm_refuses_to_change_or_delete_a_version_or_its_text(agreement):
    version = agreement.current_version
    text = version.texts.get()
    version.allow_html = True
    text.rendered_html = FORGED
    refusals: list[Callable[[], object]] = [
        version.save,
        version.delete,
        text.save,
        text.delete,
        lambda: AgreementVersion.objects.filter(pk=version.pk).update(allow_html=True),
        lambda: AgreementVersion.objects.filter(pk=version.pk).delete(),
        lambda: AgreementText.objects.filter(pk=text.pk).update(rendered_html=FORGED),
        lambda: AgreementText.objects.all().delete(),
        lambda: AgreementText.objects.bulk_update([text], ["rendered_html"]),
        lambda: version.texts.update(sha256="0" * 64),
    ]
    for refuse in refusals:
        with pytest.raises(AppendOnlyError):
            refuse()
    assert AgreementText.objects.get(pk=text.pk).rendered_html != FORGED
    assert AgreementVersion.objects.get(pk=version.pk).allow_html is False


def test_orm_never_deletes_an_agreement_but_still_renames_it(administrator, agreement):
    with pytest.raises(AppendOnlyError, match="deactivate"):
        agreement.delete()
    with pytest.raises(AppendOnlyError, match="deactivate"):
        Agreement.objects.filter(pk=agreement.pk).delete()
    services.update_agreement(actor=administrator, agreement=agreement, name="Renamed consent")
    assert Agreement.objects.get(pk=agreement.pk).name == "Renamed consent"


def test_deleting_a_user_leaves_the_versions_they_wrote_untouched(django_user_model, agreement):
    author = django_user_model.objects.create_user(username="short-lived", password="x")
    version = services.update_agreement(
        actor=author, agreement=agreement, texts={"en": "A reworded consent."}
    )
    author_id = author.pk
    # SET_NULL would UPDATE the immutable version row and the trigger would refuse it.
    author.delete()
    version = AgreementVersion.objects.select_related("created_by").get(pk=version.pk)
    assert version.created_by_id == author_id and version.created_by is None


# ----- raw SQL through a connection Django does not manage -----------------------------------


@pytest.fixture
def raw_sql(transactional_db) -> Iterator[Callable[[str], Exception | None]]:
    """Run one statement on a fresh sqlite3/psycopg connection; return the error, if any."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        raw = sqlite3.connect(settings["NAME"], isolation_level=None)
        # A plain sqlite3 connection does not enforce foreign keys: only triggers protect.
        assert raw.execute("PRAGMA foreign_keys").fetchone()[0] == 0
        errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
    else:
        import psycopg

        raw = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"] or None,
            password=settings["PASSWORD"] or None,
            host=settings["HOST"] or None,
            port=settings["PORT"] or None,
            autocommit=True,
        )
        errors = (psycopg.Error,)

    def run(sql: str) -> Exception | None:
        try:
            raw.execute(sql)
        except errors as exc:
            return exc
        return None

    yield run
    raw.close()


def test_raw_sql_cannot_rewrite_or_delete_the_wording(raw_sql, give):
    record = give()
    text = AgreementText.objects.get(version=record.version, language=record.language)
    for sql in (
        f"UPDATE consent_agreementtext SET rendered_html = '{FORGED}' WHERE id = {text.pk}",
        f"UPDATE consent_agreementtext SET sha256 = '{'0' * 64}'",
        f"DELETE FROM consent_agreementtext WHERE id = {text.pk}",
        f"UPDATE consent_agreementversion SET allow_html = TRUE WHERE id = {record.version_id}",
        f"UPDATE consent_agreementversion SET agreement_id = 0 WHERE id = {record.version_id}",
        f"DELETE FROM consent_agreementversion WHERE id = {record.version_id}",
    ):
        error = raw_sql(sql)
        assert error is not None, sql
        assert "append-only" in str(error), sql
    assert AgreementText.objects.get(pk=text.pk).rendered_html == text.rendered_html
    assert check_record_text(record).ok


def test_raw_sql_cannot_delete_an_agreement_that_has_records(raw_sql, give):
    record = give()
    error = raw_sql(f"DELETE FROM consent_agreement WHERE id = {record.agreement_id}")
    assert error is not None
    assert "never deleted" in str(error)
    assert raw_sql("DELETE FROM consent_agreement") is not None
    assert Agreement.objects.filter(pk=record.agreement_id).exists()
    # Renaming and deactivating stay possible (the console audits them).
    assert (
        raw_sql(f"UPDATE consent_agreement SET name = 'x' WHERE id = {record.agreement_id}") is None
    )


def test_a_database_session_cannot_change_versions_or_texts(db, agreement):
    # The same guarantee inside Django's own connection (SQLite and PostgreSQL).
    version = agreement.current_version
    for sql in (
        "UPDATE consent_agreementtext SET text = 'x'",
        "DELETE FROM consent_agreementtext",
        "UPDATE consent_agreementversion SET number = 99",
        "DELETE FROM consent_agreementversion",
        "DELETE FROM consent_agreement",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AgreementVersion.objects.get(pk=version.pk).number == version.number


def test_migrations_installed_every_guard(db):
    for table in triggers.guarded_tables():
        assert triggers.installed(connection, table), table


# ----- the record page recomputes the hash ----------------------------------------------------


def _record_url(record: ConsentRecord) -> str:
    return reverse("consent:record_detail", args=[record.uuid])


def _forge(sql: str, params=()) -> None:
    """Rewrite the wording as someone with the database's owner rights would: triggers off."""
    tables = ["consent_agreementtext"]
    triggers.drop(connection, tables)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        triggers.install(connection, tables)


def test_text_digest_is_the_sha256_of_the_html_the_client_was_shown(give):
    record = give()
    text = AgreementText.objects.get(version=record.version, language=record.language)
    expected = hashlib.sha256(text.rendered_html.encode("utf-8")).hexdigest()
    assert text_digest(text) == expected == record.text_sha256
    check = check_record_text(record)
    assert check.ok and check.expected == check.actual == expected


def test_record_page_names_a_forged_text_even_when_its_hash_column_was_forged_too(
    auditor_client, give
):
    record = give()
    forged_hash = hashlib.sha256(FORGED.encode()).hexdigest()
    _forge(
        "UPDATE consent_agreementtext SET rendered_html = %s, sha256 = %s "
        "WHERE version_id = %s AND language = %s",
        [FORGED, forged_hash, record.version_id, record.language],
    )
    page = auditor_client.get(_record_url(record)).content.decode()
    assert TEXT_ALTERED in page
    assert "matches the stored text" not in page
    assert 'data-text-check="failed"' in page
    assert record.text_sha256 in page and forged_hash in page


def test_record_page_names_a_forged_text_when_only_the_wording_changed(auditor_client, give):
    # Today's page compared the record with the column, so this showed "matches".
    record = give()
    _forge(
        "UPDATE consent_agreementtext SET rendered_html = %s WHERE version_id = %s",
        [FORGED, record.version_id],
    )
    page = auditor_client.get(_record_url(record)).content.decode()
    assert TEXT_ALTERED in page
    assert "matches the stored text" not in page


def test_record_page_names_a_forged_hash_column(auditor_client, give):
    record = give()
    _forge("UPDATE consent_agreementtext SET sha256 = %s", ["f" * 64])
    check = check_record_text(record)
    assert not check.ok and check.message == COLUMN_ALTERED and check.stored == "f" * 64
    page = auditor_client.get(_record_url(record)).content.decode()
    assert COLUMN_ALTERED in page
    assert "matches the stored text" not in page


def test_record_page_names_a_deleted_text(auditor_client, give):
    record = give()
    triggers.drop(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM consent_agreementtext")
    finally:
        triggers.install(connection)
    page = auditor_client.get(_record_url(record)).content.decode()
    assert TEXT_MISSING in page
    assert "matches the stored text" not in page


def test_record_page_shows_an_intact_record_as_matching(auditor_client, give):
    record = give()
    response = auditor_client.get(_record_url(record))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-text-check="ok"' in page and "text-check-alert" not in page


def test_version_page_recomputes_each_texts_hash(auditor_client, agreement):
    version = agreement.current_version
    assert all(check_text(t).ok for t in version.texts.all())
    _forge("UPDATE consent_agreementtext SET rendered_html = %s", [FORGED])
    assert not check_text(version.texts.get()).ok
    url = reverse("consent:version_detail", args=[agreement.pk, version.number])
    page = auditor_client.get(url).content.decode()
    assert COLUMN_ALTERED in page and 'data-text-check="failed"' in page


def test_a_forged_text_is_named_for_every_record_that_points_at_it(give):
    first, second = give(), give()
    _forge("UPDATE consent_agreementtext SET rendered_html = %s", [FORGED])
    for record in ConsentRecord.objects.filter(pk__in=[first.pk, second.pk]):
        check = check_record_text(record)
        assert not check.ok and check.message == TEXT_ALTERED
        assert check.actual == hashlib.sha256(FORGED.encode()).hexdigest()


def test_version_diff_shows_the_hash_of_the_stored_wording_not_the_column(
    auditor_client, administrator, agreement
):
    v2 = services.update_agreement(
        actor=administrator, agreement=agreement, texts={"en": "A reworded consent."}
    )
    column = v2.texts.get().sha256
    _forge(
        "UPDATE consent_agreementtext SET rendered_html = %s WHERE version_id = %s", [FORGED, v2.pk]
    )
    url = reverse("consent:version_diff", args=[agreement.pk, v2.number])
    page = auditor_client.get(url).content.decode()
    assert hashlib.sha256(FORGED.encode()).hexdigest() in page
    assert column not in page


def test_a_new_record_hashes_the_wording_shown_not_a_forged_hash_column(give):
    _forge("UPDATE consent_agreementtext SET sha256 = %s", ["f" * 64])
    record = give()
    text = AgreementText.objects.get(version=record.version, language=record.language)
    assert record.text_sha256 == hashlib.sha256(text.rendered_html.encode("utf-8")).hexdigest()
    # The record is right; the forged column is still named.
    assert check_record_text(record).message == COLUMN_ALTERED
