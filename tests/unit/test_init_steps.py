"""`infra.bench.init_steps` times each function's init statement by statement: it must find every
function's init block, and time each client `Runtime.prepare` makes apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.bench.init_steps import init_statements

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@pytest.mark.parametrize("app", sorted(FUNCTIONS.glob("*/app.py")), ids=lambda app: app.parent.name)
def test_every_functions_init_is_found_with_its_clients_one_by_one(app: Path) -> None:
    statements = init_statements(app)
    assert "runtime = get_runtime()" in statements
    prepared = [statement for statement in statements if statement.startswith("runtime.prepare(")]
    assert prepared and all(statement.count(",") == 0 for statement in prepared)
    assert "dynamodb" in prepared[0]  # every function reads or writes a table


def test_a_module_without_an_init_block_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("import json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no `with collecting_later"):
        init_statements(app)
