"""Layers, drop-ins, masking, list rules and provenance behave as docs/configuration.md says."""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from tests.config.helpers import copy_examples, wradm, write
from wayray import config as wc
from wayray.config.show import render as show_render


def test_everything_works_on_built_in_defaults(tmp_path: Path) -> None:
    cfg = wc.load(tmp_path)
    assert cfg.servers == {}
    assert cfg.sources == ()
    assert cfg.policies["default"] == wc.PolicyConfig(name="default")
    assert cfg.host.launcher_socket.as_posix() == "/run/wayray/wrsessd.sock"
    assert cfg.host.admin_socket_for("lab").as_posix() == "/run/wayray/lab/admin.sock"
    assert cfg.usb.default is wc.UsbAction.DENY
    res = wradm("--root", tmp_path, "check")
    assert (res.returncode, res.stderr) == (0, "")
    assert "servers: none" in res.stdout


def test_a_higher_layer_replaces_the_same_file_entirely(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "usr/lib/wayray/servers.toml": "[server.vendor]\nport = 7200\n",
            "run/wayray/servers.toml": "[server.runtime]\nport = 7300\n",
            "etc/wayray/servers.toml": "[server.admin]\nport = 7400\n",
        },
    )
    cfg = wc.load(tmp_path)
    assert list(cfg.servers) == ["admin"]
    os.unlink(tmp_path / "etc/wayray/servers.toml")
    assert list(wc.load(tmp_path).servers) == ["runtime"]


def test_drop_ins_apply_in_name_order_across_layers(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "etc/wayray/servers.toml": "[server.lab]\nport = 7100\nmax_sessions = 10\n",
            "usr/lib/wayray/servers.toml.d/10-vendor.toml": (
                '[server.lab]\nmax_sessions = 20\npool = "vendor"\n'
            ),
            "etc/wayray/servers.toml.d/20-admin.toml": "[server.lab]\nmax_sessions = 30\n",
            "run/wayray/servers.toml.d/30-runtime.toml": "[server.lab]\nmax_sessions = 40\n",
            # same name as the vendor drop-in, higher layer: replaces it (pool is gone)
            "etc/wayray/servers.toml.d/10-vendor.toml": "[server.lab]\nport = 7101\n",
        },
    )
    cfg = wc.load(tmp_path)
    lab = cfg.server("lab")
    assert (lab.max_sessions, lab.port, lab.pool) == (40, 7101, "")
    logical = [s.logical for s in cfg.sources if s.spec_name == "servers.toml"]
    assert logical == [
        "/etc/wayray/servers.toml",
        "/etc/wayray/servers.toml.d/10-vendor.toml",
        "/etc/wayray/servers.toml.d/20-admin.toml",
        "/run/wayray/servers.toml.d/30-runtime.toml",
    ]
    assert cfg.origin("server.lab.max_sessions") == wc.Origin(
        str(tmp_path / "run/wayray/servers.toml.d/30-runtime.toml"),
        2,
        16,
        "/run/wayray/servers.toml.d/30-runtime.toml",
    )


@pytest.mark.parametrize("how", ["devnull-link", "empty-file"])
def test_masking_hides_lower_files_but_keeps_drop_ins(tmp_path: Path, how: str) -> None:
    write(
        tmp_path,
        {
            "usr/lib/wayray/servers.toml": "[server.vendor]\nport = 7200\n",
            "usr/lib/wayray/servers.toml.d/50-extra.toml": "[server.extra]\nport = 7300\n",
            "usr/lib/wayray/servers.toml.d/60-more.toml": "[server.more]\nport = 7400\n",
        },
    )
    mask = tmp_path / "etc/wayray/servers.toml"
    dropin_mask = tmp_path / "etc/wayray/servers.toml.d/60-more.toml"
    dropin_mask.parent.mkdir(parents=True)
    for path in (mask, dropin_mask):
        if how == "devnull-link":
            os.symlink("/dev/null", path)
        else:
            path.write_text("")
    assert list(wc.load(tmp_path).servers) == ["extra"]


def test_usb_rules_append_across_drop_ins_and_an_empty_list_resets(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "usr/lib/wayray/usb.toml": '[[usb.rule]]\nclass = 3\naction = "deny"\n',
            "etc/wayray/usb.toml.d/10-a.toml": '[[usb.rule]]\nvendor = 0x1050\naction = "allow"\n',
            "etc/wayray/usb.toml.d/20-b.toml": (
                '[[usb.rule]]\nclass = 8\naction = "allow"\nusers = ["@staff"]\n'
            ),
        },
    )
    rules = wc.load(tmp_path).usb.rules
    assert [(r.class_, r.vendor) for r in rules] == [(3, None), (None, 0x1050), (8, None)]
    write(tmp_path, {"etc/wayray/usb.toml.d/15-reset.toml": "[usb]\nrule = []\n"})
    cfg = wc.load(tmp_path)
    assert [(r.class_, r.vendor) for r in cfg.usb.rules] == [(8, None)]
    assert cfg.origin("usb.rule[0].class") is not None
    assert cfg.origin("usb.rule[0].class").line == 2  # type: ignore[union-attr]


def test_list_rules_replace_or_append_per_key_and_environments_merge(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "etc/wayray/servers.toml": '[server.a]\nlisten = ["::"]\n',
            "etc/wayray/servers.toml.d/50.toml": '[server.a]\nlisten = ["192.0.2.1", "192.0.2.2"]\n',
            "etc/wayray/session.toml": '[session]\nautostart = ["foot"]\nenvironment = { A = "1", B = "2" }',
            "etc/wayray/session.toml.d/50.toml": '[session]\nautostart = ["mako"]\nenvironment = {B = "3"}',
        },
    )
    cfg = wc.load(tmp_path)
    assert cfg.server("a").listen == ("192.0.2.1", "192.0.2.2")
    assert cfg.session.autostart == (("foot",), ("mako",))
    assert dict(cfg.session.environment) == {"A": "1", "B": "3"}
    assert cfg.origin("session.autostart[1]").path.endswith("session.toml.d/50.toml")  # type: ignore[union-attr]
    assert cfg.origin("session.environment.A").path.endswith("/session.toml")  # type: ignore[union-attr]


def test_a_bad_value_in_an_overridden_drop_in_is_still_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "etc/wayray/servers.toml.d/10.toml": '[server.a]\nport = "abc"\n',
            "etc/wayray/servers.toml.d/20.toml": "[server.a]\nport = 7200\n",
        },
    )
    result = wc.load_report(tmp_path)
    assert [d.format() for d in result.errors] == [
        f"{tmp_path}/etc/wayray/servers.toml.d/10.toml:2:8: error: server.a.port: "
        'expected integer, got string "abc"'
    ]
    assert result.config.server("a").port == 7200
    with pytest.raises(wc.ConfigError) as err:
        wc.load(tmp_path)
    assert err.value.diagnostics == result.diagnostics


def test_show_origin_names_the_file_line_and_column_of_each_value(tmp_path: Path) -> None:
    copy_examples(tmp_path)
    write(tmp_path, {"etc/wayray/servers.toml.d/50-big.toml": "[server.main]\nmax_sessions = 100\n"})
    res = wradm("--root", tmp_path, "show", "--origin", "server.main")
    assert res.returncode == 0, res.stderr
    lines = {ln.split("=")[0].strip(): ln for ln in res.stdout.splitlines() if "=" in ln}
    etc = f"{tmp_path}/etc/wayray"
    assert lines["port"].endswith(f"# {etc}/servers.toml:12:8")
    assert lines["max_sessions"].endswith(f"# {etc}/servers.toml.d/50-big.toml:2:16")
    assert lines["output.width"].endswith(f"# {etc}/servers.toml:19:9")
    assert lines["listen"].endswith("# default")
    assert res.stdout.startswith("[server.main]")


def test_show_prints_a_configuration_that_means_the_same(tmp_path: Path) -> None:
    copy_examples(tmp_path)
    original = wc.load(tmp_path)
    shown = show_render(original)
    tomllib.loads(shown)
    again = tmp_path / "again"
    sections: dict[str, list[str]] = {}
    current = ""
    for line in shown.splitlines():
        if line.startswith("# ") and ".toml: " in line:  # "# servers.toml: /etc/wayray/servers.toml"
            current = line[2:].split(":")[0]
        sections.setdefault(current, []).append(line)
    for name, lines in sections.items():
        if name:
            write(again, {f"etc/wayray/{name}": "\n".join(lines) + "\n"})
    reloaded = wc.load(again)
    for attr in ("servers", "policies", "usb", "session", "host", "client"):
        assert getattr(reloaded, attr) == getattr(original, attr), attr


def test_load_for_one_instance_ignores_other_instances_errors(tmp_path: Path) -> None:
    write(tmp_path, {"etc/wayray/servers.toml": '[server.good]\nport = 7100\n[server.bad]\nport = "x"\n'})
    assert wc.load(tmp_path, instance="good").server("good").port == 7100
    with pytest.raises(wc.ConfigError, match="server.bad.port"):
        wc.load(tmp_path, instance="bad")
    with pytest.raises(
        wc.UnknownInstance, match=r"no server instance 'godo' is configured .* \(did you mean 'good'\?\)"
    ):
        wc.load(tmp_path, instance="godo")
    assert wradm("--root", tmp_path, "check", "--instance", "good", "--quiet").returncode == 0
    assert wradm("--root", tmp_path, "check", "--instance", "bad").returncode == 1


def test_a_user_session_file_overrides_key_by_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "etc/wayray/session.toml": (
                '[session]\npanel = "waybar"\nautostart = ["a", "b"]\nenvironment = { X = "1" }\n'
            )
        },
    )
    system = wc.load(tmp_path).session
    user = b'[session]\nautostart = ["c"]\nenvironment = { Y = "2" }\nwindow_manger = "x"\n'
    session, problems = wc.load_user_session(system, user, "/home/alice/.config/wayray/session.toml")
    assert session.panel == ("waybar",)
    assert session.autostart == (("c",),)
    assert dict(session.environment) == {"X": "1", "Y": "2"}
    assert [p.format() for p in problems] == [
        "/home/alice/.config/wayray/session.toml:4:1: error: session: unknown key 'window_manger' "
        "(did you mean 'window_manager'?)"
    ]
    assert wc.load_user_session(system, None) == (system, ())
    broken, problems = wc.load_user_session(system, b"[session\n")
    assert broken == system and problems[0].message.startswith("invalid TOML")


def test_usb_first_matching_rule_decides() -> None:
    rules = (
        wc.UsbRule(action=wc.UsbAction.DENY, vendor=0x1050, product=0x0407),
        wc.UsbRule(action=wc.UsbAction.ALLOW, vendor=0x1050),
        wc.UsbRule(action=wc.UsbAction.ALLOW, class_=0x08, subclass=0x06, users=("@staff",)),
    )
    usb = wc.UsbConfig(default=wc.UsbAction.DENY, rules=rules)
    yubikey = wc.UsbDevice(0x1050, 0x0407, ((0x03, 0, 0),))
    other_key = wc.UsbDevice(0x1050, 0x0010, ())
    stick = wc.UsbDevice(0x0781, 0x5581, ((0x08, 0x06, 0x50),))
    assert usb.decide(yubikey, "alice") == wc.UsbDecision(wc.UsbAction.DENY, 0, (0x03, 0, 0))
    assert usb.decide(other_key, "alice") == wc.UsbDecision(wc.UsbAction.ALLOW, 1)
    assert usb.decide(stick, "alice") == wc.UsbDecision(wc.UsbAction.DENY, None, (0x08, 0x06, 0x50))
    assert usb.decide(stick, "alice", frozenset({"staff"})) == wc.UsbDecision(wc.UsbAction.ALLOW, 2)


def test_warnings_for_stray_files_and_missing_accounts(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "etc/wayray/polices.toml": "",
            "etc/wayray/usb.toml": (
                '[[usb.rule]]\naction = "allow"\n'
                '[[usb.rule]]\nclass = 8\naction = "deny"\nusers = ["@nosuch"]\n'
            ),
            "etc/wayray/host.toml": '[host]\ngreeter_user = "greeter"\n',
            "etc/passwd": "root:x:0:0::/root:/bin/sh\n",
            "etc/group": "root:x:0:\n",
        },
    )
    result = wc.load_report(tmp_path)
    assert result.errors == ()
    got = [d.format().replace(str(tmp_path), "R") for d in result.diagnostics]
    assert got == [
        "R/etc/wayray/host.toml:2:16: warning: host.greeter_user: user 'greeter' does not exist on this "
        "system; the package creates it (systemd-sysusers), or run `useradd --system greeter`",
        "R/etc/wayray/polices.toml: warning: ignored: not a WayRay configuration file "
        "(did you mean 'policies.toml'?)",
        "R/etc/wayray/usb.toml:3:1: warning: usb.rule[1]: this rule can never match: usb.rule[0] before it "
        "matches every device",
        "R/etc/wayray/usb.toml:6:10: warning: usb.rule[1].users[0]: group 'nosuch' does not exist on this "
        "system",
    ]


def test_durations_reach_the_typed_config(tmp_path: Path) -> None:
    copy_examples(tmp_path)
    lab = wc.load(tmp_path).policies["lab"]
    assert (lab.detached_timeout, lab.idle_logout) == (timedelta(hours=2), timedelta(minutes=30))
    assert lab.clipboard is wc.ClipboardDirection.TO_CLIENT and lab.clipboard.to_client
    assert lab.tokens == (wc.SessionTokenKind.BADGE,)
