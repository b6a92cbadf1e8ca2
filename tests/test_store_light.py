"""The store's light reads: a run's outline without texts, tooltip previews, and the node table
filtered and paged in SQL."""

from __future__ import annotations

from pathlib import Path

from test_store import child, root_node

from rlm_core.meta import META, declared
from rlm_core.store.light import ERROR_CHARS, OUTLINE_META, TableFilter
from rlm_core.store.trace_store import TraceStore
from rlm_core.types import new_id


def a_run(store: TraceStore) -> tuple[str, list[str]]:
    run_id = new_id()
    store.write(root_node(run_id))
    ids = []
    for i in range(30):
        status = "error" if i == 4 else "ok"
        node = child(
            run_id,
            i + 1,
            status=status,
            input=f"prompt {i} 100%_done" if i == 7 else f"prompt {i}",
            output=f"answer {i}",
            error="x" * 1_000 if status == "error" else None,
            tokens_in=10,
            meta={"batch": "b", "batch_index": i, "used_by": ["a"], "variables": {"big": "text"}},
        )
        store.write(node)
        ids.append(node.node_id)
    store.flush()
    return run_id, ids


def test_the_outline_has_no_texts_and_only_the_meta_the_graph_reads(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    try:
        run_id, ids = a_run(store)
        nodes = store.outline(run_id)
    finally:
        store.close()
    assert [n.node_id for n in nodes] == [run_id, *ids]
    assert all(n.input is None and n.output is None for n in nodes)
    failed = next(n for n in nodes if n.status == "error")
    assert failed.error == "x" * ERROR_CHARS
    assert nodes[1].meta == {"batch": "b", "batch_index": 0, "used_by": ["a"]}
    assert nodes[1].tokens_in == 10 and nodes[1].depth == 1


def test_outline_meta_keys_are_declared() -> None:
    assert set(OUTLINE_META) <= {key for kind in META for key in declared(kind)}


def test_table_pages_filter_in_sql(traces_dir: Path) -> None:
    store = TraceStore(traces_dir)
    try:
        run_id, ids = a_run(store)
        everything = store.table_page(run_id, TableFilter(), limit=10)
        second = store.table_page(run_id, TableFilter(), limit=10, offset=10)
        errors = store.table_page(run_id, TableFilter(statuses=("error",)), limit=10)
        text = store.table_page(run_id, TableFilter(text="ANSWER 2"), limit=50)
        literal = store.table_page(run_id, TableFilter(text="100%_d"), limit=50)
        wildcard = store.table_page(run_id, TableFilter(text="%"), limit=50)
        kinds = store.table_page(run_id, TableFilter(kinds=("run",), depths=(0,)), limit=5)
        past = store.table_page(run_id, TableFilter(statuses=("error",)), limit=10, offset=40)
        previews = store.previews(run_id, ids[:3])
        full = store.full_nodes(run_id, [ids[2], ids[1]])
    finally:
        store.close()
    assert everything.total == 31 and [r["step"] for r in everything.rows] == list(range(1, 11))
    assert [r["step"] for r in second.rows] == list(range(11, 21)) and second.offset == 10
    assert [r["node_id"] for r in errors.rows] == [ids[4]] and errors.rows[0]["step"] == 6
    assert {r["node_id"] for r in text.rows} == {ids[2], *ids[20:30]}
    assert [r["node_id"] for r in literal.rows] == [ids[7]]  # % and _ match themselves
    assert [r["node_id"] for r in wildcard.rows] == [ids[7]]
    assert [r["node_id"] for r in kinds.rows] == [run_id]
    assert past.offset == 0 and past.total == 1  # a page past the end: back to the first
    assert previews == {ids[0]: "answer 0", ids[1]: "answer 1", ids[2]: "answer 2"}
    assert [n.node_id for n in full] == [ids[1], ids[2]] and full[0].input == "prompt 1"
