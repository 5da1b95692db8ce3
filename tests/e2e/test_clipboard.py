"""Clipboard text both ways between the session's programs and the viewer."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Harness, eventually, failure

pytestmark = pytest.mark.slow


def test_clipboard_text_flows_both_ways(harness: Harness) -> None:
    srv = harness.server(["foot", "--window-size-chars=80x24", "sh"])
    pasted = harness.home / "pasted.txt"
    script = harness.write_script(
        "clip.txt",
        f"""settle
# a program in the session copies: the viewer's clipboard gets the text
type printf from-session | wl-copy
key Return
expect-clipboard from-session
# the viewer copies: programs in the session can paste it
copy from the viewer
wait 200
type wl-paste --no-newline > {pasted}
key Return
settle
""",
    )
    result = harness.run_script(srv, script)
    # (the server's log too: the session's side of a copy that never arrived, for whoever reads it)
    assert result.returncode == 0, f"{failure(result)}\nwrsrvd's log:\n{srv.log_text()[-6000:]}"
    # The script's last settle can come before wl-paste has run (a quiet screen while it starts on a
    # busy machine); the session carries on without the viewer, so wait for what it writes.
    eventually(lambda: pasted.exists() and pasted.read_text(), "wl-paste's output in the session")
    assert pasted.read_text() == "from the viewer"
