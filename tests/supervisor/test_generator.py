"""The generator, run as systemd runs it (three output directories, a clean environment), enables
exactly the configured instances, and never fails the boot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, write
from tests.conftest import script


def run_generator(
    root: Path, out: Path, *, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    dirs = [out / "normal", out / "early", out / "late"]
    for d in dirs:
        d.mkdir(parents=True)
    # systemd starts generators with an almost empty environment; WAYRAY_ROOT points at the test tree.
    env = {
        "PATH": "/usr/bin:/bin",
        "SYSTEMD_SCOPE": "system",
        "WAYRAY_GENERATOR_LOG": "stderr",
        "WAYRAY_ROOT": str(root),
        **(extra_env or {}),
    }
    return subprocess.run(
        [script("wayray-generator"), *map(str, dirs)], env=env, capture_output=True, text=True, timeout=60
    )


def tree(directory: Path) -> dict[str, str]:
    out = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_text()
    return out


def test_enables_exactly_the_enabled_servers(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root",
        {
            "etc/wayray/servers.toml": "[server.a]\nport = 7100\n[server.b]\nport = 7101\nenabled = false\n",
            "etc/wayray/servers.toml.d/50-c.toml": '[server.c]\nport = 7102\nlimits.memory_max = "2G"\n',
            "usr/lib/wayray/servers.toml.d/10-vendor.toml": "[server.d]\nport = 7103\n",
        },
    )
    res = run_generator(root, tmp_path / "gen")
    assert (res.returncode, res.stderr) == (0, "")
    files = tree(tmp_path / "gen" / "normal")
    links = {k: v for k, v in files.items() if k.startswith("wayray.target.wants/")}
    template = "-> /usr/lib/systemd/system/wrsrvd@.service"
    assert links == {f"wayray.target.wants/wrsrvd@{n}.service": template for n in ("a", "c", "d")}
    assert "MemoryMax=2G" in files["wrsrvd@c.service.d/50-wayray.conf"]
    assert "SourcePath=/etc/wayray/servers.toml.d/50-c.toml" in files["wrsrvd@c.service.d/50-wayray.conf"]
    assert (
        "SourcePath=/usr/lib/wayray/servers.toml.d/10-vendor.toml"
        in files["wrsrvd@d.service.d/50-wayray.conf"]
    )
    assert not any("wrsrvd@b" in k for k in files)
    assert tree(tmp_path / "gen" / "early") == tree(tmp_path / "gen" / "late") == {}


def test_output_matches_what_render_writes_next_to_the_templates(tmp_path: Path) -> None:
    from tests.config.helpers import wradm

    root = copy_examples(tmp_path / "root")  # [server.main] enabled: something to generate
    res = run_generator(root, tmp_path / "gen")
    assert res.returncode == 0
    generated = tree(tmp_path / "gen" / "normal")
    assert (
        wradm("--root", root, "render", "--target", "systemd", "--out", tmp_path / "units").returncode == 0
    )
    rendered = {k: v for k, v in tree(tmp_path / "units").items() if "/" in k and not k.startswith(".")}
    assert generated and generated == rendered


def test_no_configuration_enables_nothing(tmp_path: Path) -> None:
    res = run_generator(tmp_path / "empty", tmp_path / "gen")
    assert (res.returncode, res.stderr) == (0, "")
    assert tree(tmp_path / "gen") == {}


def test_errors_are_logged_and_never_fail_the_boot(tmp_path: Path) -> None:
    root = write(
        tmp_path / "root",
        {
            "etc/wayray/servers.toml": "[server.good]\nport = 7100\n[server.typo]\nprot = 7101\n",
            "etc/wayray/policies.toml": "[policy.x\n",
        },
    )
    res = run_generator(root, tmp_path / "gen")
    assert res.returncode == 0
    # A table with a mistake is still enabled: its wrsrvd then stops with the message (status 78).
    links = sorted(tree(tmp_path / "gen" / "normal/wayray.target.wants"))
    assert links == ["wrsrvd@good.service", "wrsrvd@typo.service"]
    assert "servers.toml:4:1: error: server.typo: unknown key 'prot'" in res.stderr
    assert "policies.toml:1:10: error: invalid TOML" in res.stderr
    assert "run `wradm check`" in res.stderr


def test_only_what_the_server_instances_read_is_logged(tmp_path: Path) -> None:
    # A kiosk's client.toml and the launcher's session.toml do not decide the units: their problems
    # are for `wradm check`, not for the kernel log at every boot.
    root = write(
        tmp_path / "root",
        {
            "etc/wayray/servers.toml": "[server.a]\nport = 7100\n",
            "etc/wayray/client.toml": '[client]\nkiosk = "yes"\n',
            "etc/wayray/session.toml": "[session]\npanel = 7\n",
        },
    )
    res = run_generator(root, tmp_path / "gen")
    assert (res.returncode, res.stderr) == (0, "")
    assert sorted(tree(tmp_path / "gen" / "normal/wayray.target.wants")) == ["wrsrvd@a.service"]


def test_an_unparsable_servers_file_enables_the_instances_it_names_and_exits_zero(tmp_path: Path) -> None:
    """So that at boot `systemctl status wrsrvd@main` shows the syntax error (wrsrvd stops with it,
    status 78), not an instance that silently never started."""
    root = write(
        tmp_path / "root",
        {
            "etc/wayray/servers.toml": (
                '[server.main]\nport = 7100\n[server.main.output]\nwidth = "1\n'
                "[server.off]\nenabled = false\n"  # says so: stays off
            ),
            "etc/wayray/servers.toml.d/50-lab.toml": "[server.lab\nport = 1\n",
        },
    )
    res = run_generator(root, tmp_path / "gen")
    assert res.returncode == 0
    links = sorted(tree(tmp_path / "gen" / "normal/wayray.target.wants"))
    assert links == ["wrsrvd@lab.service", "wrsrvd@main.service"]
    assert "servers.toml:4:11: error: invalid TOML" in res.stderr
    assert "50-lab.toml:1:12: error: invalid TOML" in res.stderr


def test_a_table_that_says_enabled_false_stays_off_whatever_its_sub_tables(tmp_path: Path) -> None:
    # [server.off]'s own table says enabled = false; its [server.off.output] sub-table does not
    # start it. Headers indented or spaced as TOML allows still count.
    root = write(
        tmp_path / "root",
        {
            "etc/wayray/servers.toml": (
                "[server.off]\nenabled = false\n[server.off.output]\nwidth = 1024\n"
                '  [ server . "on" ]\nport = 7100\n[server.on.limits]\nmemory_max = "1G\n'
            )
        },
    )
    res = run_generator(root, tmp_path / "gen")
    assert res.returncode == 0 and "invalid TOML" in res.stderr, res.stderr
    assert sorted(tree(tmp_path / "gen" / "normal/wayray.target.wants")) == ["wrsrvd@on.service"]


def test_scanning_an_unparsable_servers_file_grows_linearly_with_it(tmp_path: Path) -> None:
    # The fallback above reads the broken file itself, at boot. Ten times the tables may cost ten
    # times the work, not a hundred (lines of Python executed, counted: the machine's speed does not
    # matter; tests/config/test_hostile.py runs whole generators on 1 MiB files under a CPU limit).
    from tests.config.test_config_fuzz import counted
    from wayray.supervisor.generator import generate

    def work(n: int) -> int:
        root = write(
            tmp_path / f"root{n}",
            {
                "etc/wayray/servers.toml": "[server.a\n"
                + "".join(f"[server.s{i}]\nenabled = false\n" for i in range(n))
            },
        )
        (tmp_path / f"gen{n}").mkdir()
        enabled, lines = counted(lambda: generate(tmp_path / f"gen{n}", root))
        assert enabled == 1  # a
        return lines

    base = work(0)
    small, large = work(300) - base, work(3000) - base
    assert large <= 15 * small, (small, large)


def test_even_an_unexpected_failure_exits_zero(tmp_path: Path) -> None:
    root = write(tmp_path / "root", {"etc/wayray/servers.toml": "[server.a]\nport = 7100\n"})
    (tmp_path / "gen").mkdir()
    # The normal directory is a file: writing into it fails.
    blocked = tmp_path / "gen" / "normal"
    blocked.write_text("not a directory")
    env = {"PATH": "/usr/bin:/bin", "WAYRAY_ROOT": str(root)}
    res = subprocess.run(
        [script("wayray-generator"), str(blocked), str(tmp_path), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0
    assert "failed, no WayRay instances enabled" in res.stderr


def test_the_generator_imports_only_the_standard_library(tmp_path: Path) -> None:
    # Only what the generator brings in counts: the interpreter's own start-up (Debian's
    # sitecustomize, the editable-install hook) is there before it runs.
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from pathlib import Path\n"
        "from wayray.supervisor.generator import generate\n"
        f"generate(Path({str(tmp_path / 'n')!r}), Path({str(tmp_path)!r}))\n"
        "std = set(sys.stdlib_module_names)\n"
        "new = [m for m in sys.modules if m not in before]\n"
        "print('\\n'.join(sorted(m for m in new if m.split('.')[0] not in std)))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    third_party = [
        m
        for m in res.stdout.split()
        if not m.startswith(("wayray", "__editable__", "_distutils_hack", "__main__"))
    ]
    assert third_party == []
    assert "wayray.config" in res.stdout


def test_a_configuration_that_cannot_be_read_in_time_gives_up_instead_of_holding_the_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Reading cannot block on a FIFO or a device any more (tests/config/test_hostile.py); should it
    # still stall (a hung network file system), the generator gives up at its deadline.
    import time

    from wayray.config import loader
    from wayray.supervisor import generator

    def stuck(root: object = None) -> None:
        time.sleep(600)

    monkeypatch.setattr(loader, "load_report", stuck)
    monkeypatch.setenv("WAYRAY_GENERATOR_DEADLINE", "1")
    monkeypatch.delenv("SYSTEMD_SCOPE", raising=False)
    assert generator.main([str(tmp_path / "normal")]) == 0
    assert (
        "gave up after 1 s reading the configuration; no WayRay instances enabled" in capsys.readouterr().err
    )
    assert not (tmp_path / "normal").exists()
