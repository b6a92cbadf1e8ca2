"""Append-only, named schema migrations for the DuckDB trace store.

Each migration runs once, in order, inside a transaction, and is recorded in
`schema_migrations`. Never edit a shipped migration: add a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]


def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    # One row per node event's latest state; the tree comes from parent_id.
    con.execute(
        """
        CREATE TABLE nodes (
            node_id VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            parent_id VARCHAR,
            kind VARCHAR NOT NULL,
            depth INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            status VARCHAR NOT NULL,
            started_at DOUBLE,
            ended_at DOUBLE,
            model VARCHAR,
            input VARCHAR,
            output VARCHAR,
            code VARCHAR,
            stdout VARCHAR,
            stderr VARCHAR,
            model_view VARCHAR,
            error VARCHAR,
            tokens_in BIGINT,
            tokens_out BIGINT,
            cost_usd DOUBLE,
            latency_s DOUBLE,
            context_spans JSON,
            meta JSON
        )
        """
    )
    # Summary of each top-level run, derived from its root `run` node, plus what the user
    # sets by hand (name, tags), which re-deriving must not overwrite.
    con.execute(
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            created_at DOUBLE,
            ended_at DOUBLE,
            question VARCHAR,
            root_model VARCHAR,
            sub_model VARCHAR,
            status VARCHAR,
            limit_name VARCHAR,
            answer VARCHAR,
            error VARCHAR,
            iterations INTEGER,
            llm_calls INTEGER,
            tokens_in BIGINT,
            tokens_out BIGINT,
            cost_usd DOUBLE,
            context_sha VARCHAR,
            context_chars BIGINT,
            config JSON,
            name VARCHAR,
            tags VARCHAR[]
        )
        """
    )
    # How far each JSONL journal has been read into the tables.
    con.execute("CREATE TABLE journals (path VARCHAR PRIMARY KEY, byte_offset BIGINT)")
    con.execute("CREATE INDEX nodes_run ON nodes (run_id)")


def m002_eval_results(con: duckdb.DuckDBPyConnection) -> None:
    # One row per (question, size, model, method) of an evaluation; `score` is NULL when the
    # plain model was not called because the context did not fit its window.
    con.execute(
        """
        CREATE TABLE eval_results (
            row_id VARCHAR PRIMARY KEY,
            eval_id VARCHAR NOT NULL,
            created_at DOUBLE,
            task VARCHAR,
            family VARCHAR,
            size BIGINT,
            context_chars BIGINT,
            question VARCHAR,
            expected VARCHAR,
            scorer VARCHAR,
            method VARCHAR,
            model VARCHAR,
            sub_model VARCHAR,
            status VARCHAR,
            answer VARCHAR,
            score DOUBLE,
            cost_usd DOUBLE,
            wall_s DOUBLE,
            tokens_in BIGINT,
            tokens_out BIGINT,
            run_id VARCHAR,
            error VARCHAR
        )
        """
    )
    con.execute("CREATE INDEX eval_results_eval ON eval_results (eval_id)")


def m003_eval_seeds(con: duckdb.DuckDBPyConnection) -> None:
    # The same question can swing from 0 of 6 to 6 of 6 right with the sampling seed, so an
    # evaluation repeats each run per seed; and an RLM that never called a sub model or never
    # recursed is a plain REPL agent, which the Evaluate page flags.
    con.execute("ALTER TABLE eval_results ADD COLUMN seed INTEGER")
    con.execute("ALTER TABLE eval_results ADD COLUMN sub_calls INTEGER")
    con.execute("ALTER TABLE eval_results ADD COLUMN child_runs INTEGER")


MIGRATIONS: list[Migration] = [m001_initial, m002_eval_results, m003_eval_seeds]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY, applied_at DOUBLE)"
    )
    done = {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        con.execute("BEGIN")
        try:
            migration(con)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)", [migration.__name__, time.time()]
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(migration.__name__)
    return applied
