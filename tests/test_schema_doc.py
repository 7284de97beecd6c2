"""docs/schema.md's schema section is generated from the migrations, and the generator sees every column."""

from pathlib import Path

from symdisc import schema_doc
from symdisc.store import Store

SCHEMA_PAGE = Path(__file__).resolve().parents[1] / "docs" / "schema.md"


def test_schema_page_is_current():
    text = SCHEMA_PAGE.read_text()
    assert schema_doc.BEGIN in text and schema_doc.END in text
    assert schema_doc.replace_in(text) == text, "docs/schema.md is stale: run `make schema`"


def test_generated_tables_match_a_real_database(tmp_path):
    with Store(tmp_path / "runs.db") as store:
        real = {name: [row[1] for row in store.db.execute(f"PRAGMA table_info({name})")]
                for (name,) in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                "AND name NOT LIKE 'sqlite_%' AND name != '_migrations'")}
    documented = {table: [c[0] for c in columns] for table, columns in schema_doc.tables().items()}
    assert documented == real


def test_every_stage_and_status_is_documented():
    doc = schema_doc.markdown()
    for word in ("generate", "heldout", "gate", "pending", "duplicate", "simplify"):
        assert f"- `{word}`:" in doc
