"""Every SMF manifest and the generated site profile validate against the illumos DTD
(service_bundle.dtd.1) with lxml, and the profile says what the configuration means."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.config.helpers import copy_examples, write
from tests.conftest import SHARED
from wayray import config as wc
from wayray.supervisor import smf

#: illumos-gate usr/src/cmd/svc/dtd/service_bundle.dtd.1 (commit 5e6220ea), kept with the tests.
DTD_PATH = Path(__file__).parent / "data" / "service_bundle.dtd.1"
# Never resolve the DOCTYPE's SYSTEM id: /usr/share/lib/xml/... is an illumos path.
PARSER = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)


@pytest.fixture(scope="module")
def dtd() -> etree.DTD:
    return etree.DTD(str(DTD_PATH))


def problems(dtd: etree.DTD, xml: bytes) -> list[str]:
    doc = etree.fromstring(xml, PARSER)
    if dtd.validate(doc):
        return []
    return [f"{e.line}: {e.message}" for e in dtd.error_log.filter_from_errors()]


def rendered(tmp_path: Path, files: dict[str, str] | None = None) -> dict[str, bytes]:
    root = copy_examples(tmp_path / "root") if files is None else write(tmp_path / "root", files)
    return {name: e.content for name, e in smf.render(wc.load(root)).items()}  # type: ignore[union-attr]


def test_the_dtd_is_the_one_the_project_researched() -> None:
    shared = SHARED / "smf" / "service_bundle.dtd.1"
    if not shared.exists():
        pytest.skip("no ../shared checkout next to the repository")
    assert DTD_PATH.read_bytes() == shared.read_bytes()


def test_manifests_and_profile_of_the_examples_are_valid(tmp_path: Path, dtd: etree.DTD) -> None:
    files = rendered(tmp_path)
    xml = {name: data for name, data in files.items() if name.endswith(".xml")}
    assert set(xml) == {"wayray-wrsrvd.xml", "wayray-wrsessd.xml", "wayray.xml"}
    for name, data in xml.items():
        assert problems(dtd, data) == [], name


def test_a_profile_with_every_feature_is_valid(tmp_path: Path, dtd: etree.DTD) -> None:
    files = rendered(
        tmp_path,
        {
            "etc/wayray/servers.toml": (
                '[server.web]\nport = 443\nlisten = ["192.0.2.1", "2001:db8::1"]\n'
                'limits = { memory_max = "1G", cpu_quota = "50%" }\n'
                "[server.off]\nenabled = false\nport = 7101\n"
            )
        },
    )
    assert problems(dtd, files["wayray.xml"]) == []


def test_the_dtd_check_catches_misordered_elements(dtd: etree.DTD) -> None:
    """The check can fail: SMF requires exec methods after dependencies, and says so."""
    data = smf.static_files()["wayray-wrsrvd.xml"].content  # type: ignore[union-attr]
    doc = etree.fromstring(data, PARSER)
    service = doc.find("service")
    assert service is not None
    service.append(service.find("dependency"))  # a dependency after <template/>
    assert not dtd.validate(doc)
    assert "does not follow the DTD" in str(dtd.error_log.filter_from_errors()[0].message)


def test_the_profile_creates_enables_and_configures_instances(tmp_path: Path) -> None:
    files = rendered(
        tmp_path,
        {"etc/wayray/servers.toml": '[server.web]\nport = 443\npool = "lab"\n[server.off]\nenabled = false'},
    )
    doc = etree.fromstring(files["wayray.xml"], PARSER)
    assert doc.get("type") == "profile"
    instances = {
        (svc.get("name"), inst.get("name")): inst.get("enabled")
        for svc in doc.iter("service")
        for inst in svc.iter("instance")
    }
    assert instances == {
        ("application/wayray/wrsessd", "default"): "true",
        ("application/wayray/wrsrvd", "web"): "true",
        ("application/wayray/wrsrvd", "off"): "false",
    }
    web = doc.find("service[@name='application/wayray/wrsrvd']/instance[@name='web']")
    assert web is not None
    props = {p.get("name"): p.get("value") for p in web.iter("propval")}
    assert props["port"] == "443"
    assert props["pool"] == "lab"
    assert "net_privaddr" in props["privileges"]  # port below 1024
    off = doc.find("service[@name='application/wayray/wrsrvd']/instance[@name='off']")
    assert off is not None
    assert "privileges" not in {p.get("name") for p in off.iter("propval")}


def test_the_refresh_method_asks_the_running_server_and_never_fails_the_instance() -> None:
    # svc.startd puts an instance whose refresh method fails into maintenance (it would stop the
    # server over a typo): the method asks the server (which refuses a broken configuration and
    # keeps its own) and always succeeds, with the errors in the service's log.
    files = smf.static_files()
    manifest = files["wayray-wrsrvd.xml"].content.decode()  # type: ignore[union-attr]
    assert '<exec_method type="method" name="refresh" exec="/lib/svc/method/svc-wrsrvd %m %i"' in manifest
    assert ":kill -HUP" not in manifest
    method = files["svc-wrsrvd"].content.decode()  # type: ignore[union-attr]
    refresh = method.index("refresh)")
    assert method.index("/opt/wayray/bin/wradm reload --quiet --instance", refresh) < method.index(
        "exit $SMF_EXIT_OK", refresh
    )


def test_the_start_method_checks_the_configuration_before_the_daemon_starts() -> None:
    files = smf.static_files()
    method = files["svc-wrsrvd"].content.decode()  # type: ignore[union-attr]
    assert files["svc-wrsrvd"].mode & 0o111  # type: ignore[union-attr]
    check = method.index("/opt/wayray/bin/wradm check --quiet --instance")
    assert method.index("exit $SMF_EXIT_ERR_CONFIG", check) < method.index("exec /opt/wayray/bin/wrsrvd")
    manifest = files["wayray-wrsrvd.xml"].content.decode()  # type: ignore[union-attr]
    assert '<exec_method type="method" name="start" exec="/lib/svc/method/svc-wrsrvd %m %i"' in manifest
