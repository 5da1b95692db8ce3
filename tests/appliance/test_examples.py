"""The configuration the package ships (etc/wayray) as an operator meets it: installing serves
nothing, the files are clean (no warning at any start), and the one edit the comments ask for
turns the server on."""

from __future__ import annotations

import re
from pathlib import Path

from tests.config.helpers import EXAMPLES, copy_examples, enable_example, wradm
from tests.supervisor.test_generator import run_generator, tree


def test_as_shipped_no_instance_is_enabled_and_nothing_warns(tmp_path: Path) -> None:
    root = copy_examples(tmp_path / "root", as_shipped=True)
    res = wradm("--root", root, "check")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.startswith("configuration OK (no problems)"), res.stdout
    assert "servers: main (disabled), lab (disabled)" in res.stdout
    gen = run_generator(root, tmp_path / "gen")
    assert (gen.returncode, gen.stderr) == (0, "")
    assert not [k for k in tree(tmp_path / "gen" / "normal") if k.startswith("wayray.target.wants/")]


def test_every_shipped_file_checks_clean_for_the_instance_as_well(tmp_path: Path) -> None:
    """What ``wrsrvd@main`` prints when it checks its files at start, once main is on: nothing at
    all (it prints warnings and notes too, not only errors)."""
    root = enable_example(copy_examples(tmp_path / "root", as_shipped=True))
    res = wradm("--root", root, "check", "--instance", "main")
    assert (res.returncode, res.stderr) == (0, ""), res.stderr
    res = wradm("--root", root, "check", "--quiet", "--instance", "main")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_the_one_edit_the_comments_ask_for_serves_main(tmp_path: Path) -> None:
    servers = (EXAMPLES / "servers.toml").read_text()
    # The header says what to change, and the line to change says so too.
    assert "change `enabled = false` to `enabled = true` in [server.main]" in servers
    main = servers.split("\n[server.main]\n", 1)[1].split("\n[", 1)[0]
    assert re.search(r"^enabled = false\s+# .*the one edit", main, re.M), main
    root = enable_example(copy_examples(tmp_path / "root", as_shipped=True))
    res = wradm("--root", root, "check")
    assert res.returncode == 0 and "servers: main, lab (disabled)" in res.stdout, res.stdout + res.stderr
    gen = run_generator(root, tmp_path / "gen")
    assert gen.returncode == 0
    links = [k for k in tree(tmp_path / "gen" / "normal") if k.startswith("wayray.target.wants/")]
    assert links == ["wayray.target.wants/wrsrvd@main.service"]


def test_the_first_login_starts_a_terminal(tmp_path: Path) -> None:
    res = wradm("--root", copy_examples(tmp_path / "root", as_shipped=True), "show", "session.autostart")
    assert res.returncode == 0, res.stderr
    assert res.stdout == '[session]\nautostart = ["foot"]\n'
