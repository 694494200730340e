"""What the SQL connectors share: quoting names as SQL identifiers.

PostgreSQL and SQLite both quote identifiers in double quotes (a quote inside is
doubled), so a table or column name given by the user reaches a statement as a
name, never as SQL.
"""

from __future__ import annotations

from typing import Any

from streamio.errors import ConfigurationError

__all__ = ["quote_identifier", "quote_table"]


def quote_identifier(name: Any, what: str) -> str:
    """``name`` quoted as an SQL identifier; ``what`` names it in the error.

    Raises:
        ConfigurationError: for a name that is not a non-empty string without NUL.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ConfigurationError(f"{what} must be a non-empty name, not {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: Any) -> str:
    """A table name, ``"name"`` or ``"schema.name"``, quoted."""
    if isinstance(table, str) and table.count(".") == 1:
        schema, _, name = table.partition(".")
        return f"{quote_identifier(schema, 'table')}.{quote_identifier(name, 'table')}"
    return quote_identifier(table, "table")
