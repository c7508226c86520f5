"""Database helpers shared by the apps' set-based writes."""

from __future__ import annotations

import psycopg
from django.db import connection


def execute_binary(sql: str, params: list) -> list[tuple]:
    """One statement on Django's connection, in its transaction, with binary
    parameters (``%b``; PostgreSQL only). Django's cursors bind on the client,
    quoting each element of a batch's arrays in Python: about ten times the cost
    of sending them binary (9 ms against 0.7 ms for a 500-row batch). The
    statement bypasses Django's execute wrappers and query log; its errors are
    still Django's database errors."""
    connection.validate_no_broken_transaction()
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []
