"""Database triggers that make the consent registry's tables append-only.

The ORM already refuses to update or delete these rows; the triggers make the
database refuse too, so raw SQL, a shell or another program cannot quietly
rewrite history. Migrations install them; tests reuse the same helpers.
"""

from __future__ import annotations

# Tables whose rows are never updated or deleted.
APPEND_ONLY_TABLES = ("consent_consentrecord", "consent_auditevent", "consent_sealbatch")

MESSAGE = "is append-only: rows cannot be updated or deleted"
PG_FUNCTION = "openline_append_only_guard"


def _sqlite_install(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} {MESSAGE}'); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} {MESSAGE}'); END",
    ]


def _sqlite_drop(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_update",
        f"DROP TRIGGER IF EXISTS {table}_no_delete",
    ]


def _pg_function() -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '% {MESSAGE} (% refused)', TG_TABLE_NAME, TG_OP "
        "USING ERRCODE = 'insufficient_privilege'; END $$"
    )


def _pg_install(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()",
    ]


def _pg_drop(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
    ]


def install_sql(vendor: str, tables=APPEND_ONLY_TABLES) -> list[str]:
    """Return the statements that install the append-only triggers on ``vendor``."""
    if vendor == "sqlite":
        return [sql for table in tables for sql in _sqlite_install(table)]
    if vendor == "postgresql":
        return [_pg_function()] + [sql for table in tables for sql in _pg_install(table)]
    raise NotImplementedError(f"append-only triggers are not written for {vendor}")


def drop_sql(vendor: str, tables=APPEND_ONLY_TABLES) -> list[str]:
    """Return the statements that remove the append-only triggers on ``vendor``."""
    if vendor == "sqlite":
        return [sql for table in tables for sql in _sqlite_drop(table)]
    if vendor == "postgresql":
        return [sql for table in tables for sql in _pg_drop(table)]
    raise NotImplementedError(f"append-only triggers are not written for {vendor}")


def install(connection, tables=APPEND_ONLY_TABLES) -> None:
    """Install (or re-install) the append-only triggers on ``connection``."""
    with connection.cursor() as cursor:
        for sql in install_sql(connection.vendor, tables):
            cursor.execute(sql)


def drop(connection, tables=APPEND_ONLY_TABLES) -> None:
    """Remove the append-only triggers; only migrations and the test-suite's flush use this."""
    with connection.cursor() as cursor:
        for sql in drop_sql(connection.vendor, tables):
            cursor.execute(sql)


def installed(connection, table: str = "consent_consentrecord") -> bool:
    """Tell whether the append-only triggers are present on ``table``."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                [table],
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                [table],
            )
        return cursor.fetchone()[0] > 0
