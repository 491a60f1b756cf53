"""Database guards on the visitor rows that consent records depend on.

A record names its client by ``visitor_id``; the receipt's ``piiPrincipalId`` is that
visitor's ``public_id``. Deleting the visitor would hide its records from every page (and
SQLite's plain connections run with foreign keys off), and changing ``public_id`` would make
later receipts sign another principal. So the database refuses both: DELETE of a visitor
that has consent records, and any change of ``public_id``. Erasure ("Delete client data")
blanks the personal fields and keeps the row, so it is not affected.

The delete guard looks up ``consent_consentrecord``. A trigger that names another table
breaks SQLite's table rebuilds (``ALTER TABLE ... RENAME`` re-checks every trigger while the
old table is gone), so these guards are never present during a migrate: a ``pre_migrate``
receiver drops them and ``post_migrate`` installs them again (see ``ConsentConfig``).
"""

from __future__ import annotations

TABLE = "conversations_visitor"
RECORDS = "consent_consentrecord"
DELETE_MESSAGE = "rows with consent records are never deleted: erase the client data instead"
PUBLIC_ID_MESSAGE = "public_id is the piiPrincipalId of receipts and never changes"
PG_FUNCTION = "openline_visitor_guard"

_SQLITE_NAMES = (f"{TABLE}_keep_recorded", f"{TABLE}_fixed_public_id")
_PG_TRIGGER = f"{TABLE}_guard"


def install_sql(vendor: str) -> list[str]:
    """Return the statements that install the visitor guards on ``vendor``."""
    if vendor == "sqlite":
        keep, fixed = _SQLITE_NAMES
        return [
            f"CREATE TRIGGER IF NOT EXISTS {keep} BEFORE DELETE ON {TABLE} "
            f"WHEN EXISTS (SELECT 1 FROM {RECORDS} WHERE visitor_id = OLD.id) "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} {DELETE_MESSAGE}'); END",
            f"CREATE TRIGGER IF NOT EXISTS {fixed} BEFORE UPDATE OF public_id ON {TABLE} "
            "WHEN NEW.public_id IS NOT OLD.public_id "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} {PUBLIC_ID_MESSAGE}'); END",
        ]
    if vendor == "postgresql":
        return [
            f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN "
            "IF TG_OP = 'DELETE' THEN "
            f"IF EXISTS (SELECT 1 FROM {RECORDS} WHERE visitor_id = OLD.id) THEN "
            f"RAISE EXCEPTION '{TABLE} {DELETE_MESSAGE} (DELETE refused)' "
            "USING ERRCODE = 'insufficient_privilege'; END IF; RETURN OLD; END IF; "
            "IF NEW.public_id IS DISTINCT FROM OLD.public_id THEN "
            f"RAISE EXCEPTION '{TABLE} {PUBLIC_ID_MESSAGE} (UPDATE refused)' "
            "USING ERRCODE = 'insufficient_privilege'; END IF; RETURN NEW; END $$",
            f"DROP TRIGGER IF EXISTS {_PG_TRIGGER} ON {TABLE}",
            f"CREATE TRIGGER {_PG_TRIGGER} BEFORE UPDATE OR DELETE ON {TABLE} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()",
        ]
    raise NotImplementedError(f"visitor guards are not written for {vendor}")


def drop_sql(vendor: str) -> list[str]:
    """Return the statements that remove the visitor guards on ``vendor``."""
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in _SQLITE_NAMES]
    if vendor == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {_PG_TRIGGER} ON {TABLE}"]
    raise NotImplementedError(f"visitor guards are not written for {vendor}")


def _tables_exist(connection) -> bool:
    return {TABLE, RECORDS} <= set(connection.introspection.table_names())


def install(connection) -> None:
    """Install (or re-install) the visitor guards, once both tables exist."""
    if not _tables_exist(connection):
        return
    with connection.cursor() as cursor:
        for sql in install_sql(connection.vendor):
            cursor.execute(sql)


def drop(connection) -> None:
    """Remove the visitor guards (before a migrate, and for the test-suite's flush)."""
    if TABLE not in set(connection.introspection.table_names()):
        return
    with connection.cursor() as cursor:
        for sql in drop_sql(connection.vendor):
            cursor.execute(sql)


def installed(connection) -> bool:
    """Tell whether the visitor guards are present."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                [TABLE],
            )
            return cursor.fetchone()[0] == len(_SQLITE_NAMES)
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
            [TABLE, _PG_TRIGGER],
        )
        return cursor.fetchone()[0] == 1
