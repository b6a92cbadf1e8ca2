"""The README's schema section, generated from the migrated database (a test keeps them equal)."""

from __future__ import annotations

import duckdb

from rlm_core.store.migrations import migrate


def schema_markdown() -> str:
    con = duckdb.connect(":memory:")
    migrate(con)
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "ORDER BY table_name, ordinal_position"
    ).fetchall()
    con.close()
    lines = ["| table | column | type |", "|---|---|---|"]
    lines += [f"| {t} | {c} | {d} |" for t, c, d in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(schema_markdown())
