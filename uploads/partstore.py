"""Write many UploadPart rows of one upload in ONE SQL statement, whatever their number.

Django's `bulk_create(update_conflicts=True)` splits its INSERT into batches of
max_query_params // fields rows: on SQLite (999 parameters) a sign or report call of 1,000
parts took 8 statements. Here the rows travel as one JSON parameter and the database unpacks
them (`json_each` on SQLite, `json_to_recordset` on PostgreSQL) inside a single
`INSERT … SELECT … ON CONFLICT (upload_id, number) DO UPDATE`: one statement, two parameters.
Other databases get `bulk_create`, which is correct but batched.

Only services.py calls this: it decides what to write; this module only knows how.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, router

from .models import Upload, UploadPart

# Every column a part row has besides its id, in insert order, with its value when not given.
COLUMNS = ("number", "size", "etag", "checksum", "signed_at", "uploaded_at")
DEFAULTS: dict[str, Any] = {
    "size": None,
    "etag": "",
    "checksum": "",
    "signed_at": None,
    "uploaded_at": None,
}
# Databases whose JSON functions unpack the rows; others get bulk_create's batches.
ONE_STATEMENT_VENDORS = ("sqlite", "postgresql")
# How PostgreSQL reads each JSON field (json_to_recordset needs the column types).
_PG_TYPES = {
    "number": "integer",
    "size": "bigint",
    "etag": "text",
    "checksum": "text",
    "signed_at": "timestamp with time zone",
    "uploaded_at": "timestamp with time zone",
}


def upsert_parts(
    upload: Upload, rows: Iterable[Mapping[str, Any]], *, update: Sequence[str]
) -> None:
    """Insert the parts `rows` (dicts with "number" and any of COLUMNS) of `upload`; a part
    that exists already gets only the `update` columns from its row, the rest is kept.

    Columns missing from a row get DEFAULTS on insert. Part numbers must be unique in `rows`.
    """
    rows = list(rows)
    if not rows:
        return
    unknown = set(update) - set(COLUMNS[1:])
    if unknown:
        raise ValueError(f"unknown part columns: {sorted(unknown)}")
    connection = connections[router.db_for_write(UploadPart)]
    vendor = connection.vendor
    if vendor not in ONE_STATEMENT_VENDORS:
        _bulk_create(upload, rows, update)
        return
    prepared: dict[tuple[str, Any], Any] = {}  # a batch shares one timestamp: convert it once
    payload = json.dumps(
        [
            {
                name: _db_value(name, row.get(name, DEFAULTS.get(name)), connection, prepared)
                for name in COLUMNS
            }
            for row in rows
        ],
        separators=(",", ":"),
    )
    upload_pk = Upload._meta.pk.get_db_prep_value(upload.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(_statement(connection, tuple(update)), [upload_pk, payload])


def _db_value(name: str, value: Any, connection: Any, prepared: dict[tuple[str, Any], Any]) -> Any:
    """The value as the database stores it, in JSON (datetimes as text the backend reads)."""
    if not isinstance(value, datetime):
        return value  # numbers and text go as they are; None is null
    key = (name, value)
    if key not in prepared:
        stored = UploadPart._meta.get_field(name).get_db_prep_value(value, connection)
        prepared[key] = stored.isoformat() if isinstance(stored, datetime) else stored
    return prepared[key]


_statements: dict[tuple[str, tuple[str, ...]], str] = {}


def _statement(connection: Any, update: tuple[str, ...]) -> str:
    """The upsert's SQL. Only names from COLUMNS and the model go into it; values are parameters."""
    vendor = connection.vendor
    cached = _statements.get((vendor, update))
    if cached is not None:
        return cached
    quote = connection.ops.quote_name
    meta = UploadPart._meta
    table = quote(meta.db_table)
    upload_column = quote(meta.get_field("upload").column)
    columns = [quote(meta.get_field(name).column) for name in COLUMNS]
    if vendor == "sqlite":
        # `WHERE true`: without a WHERE, SQLite reads ON CONFLICT as a join constraint.
        selected = ", ".join(f"json_extract(value, '$.{name}')" for name in COLUMNS)
        source = f"SELECT %s, {selected} FROM json_each(%s) WHERE true"  # noqa: S608
    else:
        record = ", ".join(f"{name} {_PG_TYPES[name]}" for name in COLUMNS)
        selected = ", ".join(f"r.{name}" for name in COLUMNS)
        source = f"SELECT %s, {selected} FROM json_to_recordset(%s::json) AS r({record})"  # noqa: S608
    if update:
        assignments = ", ".join(
            f"{quote(meta.get_field(name).column)} = excluded.{quote(meta.get_field(name).column)}"
            for name in update
        )
        conflict = f"DO UPDATE SET {assignments}"
    else:
        conflict = "DO NOTHING"
    sql = (
        f"INSERT INTO {table} ({upload_column}, {', '.join(columns)}) {source} "
        f"ON CONFLICT ({upload_column}, {quote(meta.get_field('number').column)}) {conflict}"
    )
    _statements[(vendor, update)] = sql
    return sql


def _bulk_create(upload: Upload, rows: list[Mapping[str, Any]], update: Sequence[str]) -> None:
    objects = [UploadPart(upload=upload, **{**DEFAULTS, **row}) for row in rows]
    if update:
        UploadPart.objects.bulk_create(
            objects, update_conflicts=True, unique_fields=["upload", "number"], update_fields=update
        )
    else:
        UploadPart.objects.bulk_create(objects, ignore_conflicts=True)
