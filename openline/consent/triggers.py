"""Database triggers that make the consent registry's proof unchangeable.

The ORM already refuses to update or delete these rows; the triggers make the
database refuse too, so raw SQL, a shell or another program cannot quietly
rewrite history. Migrations install them (and every migrate re-installs them);
tests reuse the same helpers.

Three kinds of guard:

- append-only tables (records, seals, audit): rows are inserted, never changed;
- the wording a record points at (versions and their texts): written once, never changed;
- agreements: renamed and deactivated (that is audited), never deleted. Every agreement
  gets its first version in the transaction that creates it, so "never deleted" is the
  same as "not while versions or records refer to it", and the trigger needs no lookup
  in another table: a trigger that names another table breaks SQLite's table rebuilds
  (``ALTER TABLE ... RENAME`` re-checks every trigger while the old table is gone).
  PostgreSQL's foreign keys refuse such a delete anyway; a plain ``sqlite3`` connection
  runs with ``PRAGMA foreign_keys=OFF``, so SQLite needs the trigger.
"""

from __future__ import annotations

from collections.abc import Iterable

# Tables whose rows are never updated or deleted.
APPEND_ONLY_TABLES = (
    "consent_consentrecord",
    "consent_auditevent",
    "consent_sealbatch",
    "consent_checkpoint",
)
# The exact wording a client saw: as immutable as the record that points at it.
IMMUTABLE_TABLES = ("consent_agreementversion", "consent_agreementtext")
# Tables whose rows can be updated but never deleted.
NO_DELETE_TABLES = ("consent_agreement",)

MESSAGE = "is append-only: rows cannot be updated or deleted"
GUARD_MESSAGE = "rows are never deleted: deactivate the consent instead"
PG_FUNCTION = "openline_append_only_guard"


def unchangeable_tables() -> tuple[str, ...]:
    """Return every table whose rows can never be updated or deleted."""
    return APPEND_ONLY_TABLES + IMMUTABLE_TABLES


def guarded_tables() -> tuple[str, ...]:
    """Return every table with a trigger of ours (unchangeable or delete-guarded)."""
    return unchangeable_tables() + NO_DELETE_TABLES


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


def _sqlite_guard_install(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} {GUARD_MESSAGE}'); END"
    ]


def _sqlite_guard_drop(table: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {table}_no_delete"]


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


def _pg_guard_install(table: str) -> list[str]:
    function = f"{table}_delete_guard"
    return [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{table} {GUARD_MESSAGE} (% refused)', TG_OP "
        "USING ERRCODE = 'insufficient_privilege'; END $$",
        f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


def _pg_guard_drop(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
    ]


def _split(tables: Iterable[str] | None) -> tuple[list[str], list[str]]:
    chosen = list(guarded_tables() if tables is None else tables)
    return (
        [t for t in chosen if t not in NO_DELETE_TABLES],
        [t for t in chosen if t in NO_DELETE_TABLES],
    )


def install_sql(vendor: str, tables: Iterable[str] | None = None) -> list[str]:
    """Return the statements that install the triggers (all of them by default) on ``vendor``."""
    plain, guards = _split(tables)
    if vendor == "sqlite":
        return [sql for t in plain for sql in _sqlite_install(t)] + [
            sql for t in guards for sql in _sqlite_guard_install(t)
        ]
    if vendor == "postgresql":
        return (
            [_pg_function()]
            + [sql for t in plain for sql in _pg_install(t)]
            + [sql for t in guards for sql in _pg_guard_install(t)]
        )
    raise NotImplementedError(f"append-only triggers are not written for {vendor}")


def drop_sql(vendor: str, tables: Iterable[str] | None = None) -> list[str]:
    """Return the statements that remove the triggers (all of them by default) on ``vendor``."""
    plain, guards = _split(tables)
    if vendor == "sqlite":
        return [sql for t in plain for sql in _sqlite_drop(t)] + [
            sql for t in guards for sql in _sqlite_guard_drop(t)
        ]
    if vendor == "postgresql":
        return [sql for t in plain for sql in _pg_drop(t)] + [
            sql for t in guards for sql in _pg_guard_drop(t)
        ]
    raise NotImplementedError(f"append-only triggers are not written for {vendor}")


def _present(connection, tables: Iterable[str] | None) -> list[str]:
    # Historical migrations call install() too, before later tables exist: by default,
    # act on the guarded tables that exist now.
    if tables is not None:
        return list(tables)
    existing = set(connection.introspection.table_names())
    return [t for t in guarded_tables() if t in existing]


def install(connection, tables: Iterable[str] | None = None) -> None:
    """Install (or re-install) the triggers on ``connection`` (every existing table by default)."""
    chosen = _present(connection, tables)
    if not chosen:
        return
    with connection.cursor() as cursor:
        for sql in install_sql(connection.vendor, chosen):
            cursor.execute(sql)


def drop(connection, tables: Iterable[str] | None = None) -> None:
    """Remove the triggers; only migrations and the test-suite's flush use this."""
    chosen = _present(connection, tables)
    if not chosen:
        return
    with connection.cursor() as cursor:
        for sql in drop_sql(connection.vendor, chosen):
            cursor.execute(sql)


def installed(connection, table: str = "consent_consentrecord") -> bool:
    """Tell whether our triggers are present on ``table``."""
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
