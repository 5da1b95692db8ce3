"""A headless viewer's script that ends right after its last key (people checking a deployment write
them so): the viewer does not leave before the server has the keys, so the session gets them all.
Real wrsrvd, real foot and shell, real headless wrclient."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.harness import Harness, eventually, failure

pytestmark = pytest.mark.slow


def test_keys_typed_at_the_very_end_of_a_script_reach_the_session(harness: Harness) -> None:
    srv = harness.server(["foot", "--window-size-chars=80x24", "sh"])
    out = harness.home / "typed.txt"
    word = secrets.token_hex(6)
    script = harness.write_script("last-keys.txt", f"settle\ntype echo {word} > {out}\nkey Return\n")
    result = harness.run_script(srv, script)
    assert result.returncode == 0, failure(result)
    # The shell ran the line: every key, the last Return too, reached it.
    eventually(lambda: out.exists() and out.read_text().strip() == word, "the typed line to run")
