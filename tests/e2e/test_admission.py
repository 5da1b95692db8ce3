"""One source cannot take every session (security review M1): per-source limits on sessions nobody uses
and on how many start a minute, a memory budget, and a short life for sessions never used."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import script
from tests.e2e.harness import (
    Harness,
    WrServer,
    admin_status,
    eventually,
    failure,
    free_udp_port,
    kill_sessions,
)
from wayray.server.admin import AdminClient
from wayray.transport import ClientSettings, ConnectionClosedError, PinnedFingerprint, connect
from wayray.wire import ErrorCode, HelloParams, TokenKind

pytestmark = pytest.mark.slow

#: Sessions in these tests run nothing heavier than a sleep: it is about how many, not what they do.
IDLE = ["sleep", "3600"]


async def _open_and_leave(srv: WrServer, tokens: list[str]) -> list[Any]:
    """For each token (4 at a time, as the review's flood did): connect from 127.0.0.1, and leave at
    once. Each result is the ServerHello, or the ConnectionClosedError that refused it."""
    settings = ClientSettings(trust=PinnedFingerprint(srv.fingerprint), own_server=srv.own_server)
    gate = asyncio.Semaphore(4)

    async def one(token: str) -> Any:
        async with gate:
            hello = HelloParams(
                token=token, token_kind=TokenKind.SOFTWARE, screen_width=640, screen_height=480
            )
            try:
                conn = await connect("127.0.0.1", srv.port, settings, hello)
            except ConnectionClosedError as err:
                return err
            sh = conn.server_hello
            await conn.aclose()
            return sh

    return list(await asyncio.gather(*(one(t) for t in tokens)))


def test_one_address_cannot_take_every_session_slot(harness: Harness) -> None:
    srv = harness.server(IDLE, listen=("127.0.0.1", "::1"))
    results = asyncio.run(_open_and_leave(srv, [f"flood-{n:02d}" for n in range(20)]))
    started = [r for r in results if not isinstance(r, ConnectionClosedError)]
    refused = [r for r in results if isinstance(r, ConnectionClosedError)]
    # The default admission.unused_sessions_per_source (16): the rest are told why, and may retry later.
    assert len(started) == 16 and len(srv.sessions()) == 16
    assert len(refused) == 4
    for err in refused:
        assert err.code == ErrorCode.SERVER_BUSY and "127.0.0.1 already has 16" in err.reason, err.reason
    # Somebody else (another address) still gets a session.
    other = subprocess.run(
        [script("wrclient"), f"[::1]:{srv.port}", "--fingerprint", srv.fingerprint, "--headless",
         "--token", "somebody-else", "--snapshot", str(harness.tmp / "other.png")],
        env=harness.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert other.returncode == 0, failure(other)
    assert len(srv.sessions()) == 17
    # Four refusals, one line in the log: a flood does not fill the disk with them.
    assert srv.log_text().count("no new session") == 1


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Any]:
    """``start(servers_extra, policy)`` runs a `sessions = "command"` instance on loopback; yields it."""
    h = Harness(tmp_path)
    procs: list[subprocess.Popen[bytes]] = []
    run = h.short / "run"

    class Instance:
        harness = h
        port = free_udp_port()
        admin_socket = run / "demo" / "admin.sock"
        fingerprint = ""
        log = tmp_path / "wrsrvd.log"
        key = tmp_path / "state" / "demo" / "access.key"

        def start(self, servers_extra: str = "", policy: str = "") -> None:
            etc = tmp_path / "root" / "etc" / "wayray"
            etc.mkdir(parents=True)
            (etc / "host.toml").write_text(
                f'[host]\nstate_dir = "{tmp_path / "state"}"\nruntime_dir = "{run}"\n'
            )
            # No login: viewers present the instance's key (made on its first start), on loopback too.
            admission = "[server.demo.admission]\n"
            keyed = f'{admission}access_key_file = "{self.key}"\n'
            servers_extra = (
                servers_extra.replace(admission, keyed)
                if admission in servers_extra
                else servers_extra + keyed
            )
            (etc / "servers.toml").write_text(
                f'[server.demo]\nlisten = ["127.0.0.1", "::1"]\nport = {self.port}\nsessions = "command"\n'
                f"session_command = {IDLE!r}\n".replace("'", '"')
                + servers_extra
            )
            (etc / "policies.toml").write_text("[policy.default]\n" + policy)
            proc = subprocess.Popen(
                [script("wrsrvd"), "--instance", "demo", "--root", str(tmp_path / "root")],
                env=h.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self.log.open("wb"), start_new_session=True,
            )  # fmt: skip
            procs.append(proc)
            self.fingerprint = admin_status(proc, self.admin_socket)["fingerprint"]

        def sessions(self) -> list[dict[str, Any]]:
            with AdminClient(self.admin_socket) as admin:
                return list(admin.request("sessions")["sessions"])

        def viewer(self, token: str, *args: str, host: str = "127.0.0.1") -> Any:
            """A wrclient that shows ``token``'s session and leaves (``args``: a script to play). It
            does not try again when refused (SERVER_BUSY): the refusal is what these tests look at."""
            argv = [script("wrclient"), f"{host}:{self.port}", "--fingerprint", self.fingerprint,
                    "--headless", "--token", token, "--size", "640x480", "--no-reconnect",
                    "--access-key-file", str(self.key)]  # fmt: skip
            shot = h.tmp / f"{token}.png"
            return subprocess.run([*argv, *args, "--snapshot", str(shot)], env=h.env, capture_output=True,
                                  text=True, timeout=180)  # fmt: skip

        def use(self, token: str, host: str = "127.0.0.1") -> None:
            """Show ``token``'s session and type into it: it is in use from now on."""
            # (settle: keys typed just before a viewer leaves may be cut off with its connection)
            typed = h.write_script(f"{token}.script", "type x\nsettle\n")
            result = self.viewer(token, "--script", str(typed), host=host)
            assert result.returncode == 0, failure(result)

    yield Instance()
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
    kill_sessions(run / "demo" / "link.sock")
    h.cleanup()


def test_sessions_never_used_end_soon_and_sessions_in_use_stay(instance: Any) -> None:
    instance.start(policy='untouched_timeout = "4s"\n')
    instance.use("in-use")  # typed into, then left
    [in_use] = instance.sessions()
    unused = instance.viewer("looked-at-only")  # only looked at, then left (after the other)
    assert unused.returncode == 0, failure(unused)
    # (Not counted here: on a loaded machine the unused one may be over before anybody asks.)
    # The one nobody used ends once its untouched_timeout is over...
    eventually(lambda: "ended (untouched_timeout)" in instance.log.read_text(), "the unused session to end")
    # ...while the one in use, left earlier, keeps the policy's detached timeout (24 h).
    [kept] = instance.sessions()
    assert (kept["id"], kept["state"]) == (in_use["id"], "detached")


def test_new_sessions_per_minute_per_source(instance: Any) -> None:
    instance.start("[server.demo.admission]\nnew_sessions_per_minute = 2\n")
    # Three badges from one source at once (all within the minute however slow the machine is):
    # two get sessions, the third is refused with the reason.
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(instance.viewer, ["quick-1", "quick-2", "quick-3"]))
    refused = [r for r in results if r.returncode != 0]
    assert len(refused) == 1, [failure(r) for r in results]
    assert refused[0].returncode == 1, failure(refused[0])
    assert "started 2 sessions or login screens in the last minute" in refused[0].stderr, failure(refused[0])
    assert len(instance.sessions()) == 2
    # Another source has its own allowance.
    other = instance.viewer("elsewhere", host="[::1]")
    assert other.returncode == 0, failure(other)


def test_the_memory_budget_and_a_sources_share_of_it(instance: Any) -> None:
    # 40% of 1 GiB: about 410 MiB for sessions, of which one source's unused ones may take a quarter.
    # A session with a 640x480 output is estimated at about 101 MiB: one unused one per source fits.
    instance.start('[server.demo.limits]\nmemory_max = "1G"\n[server.demo.admission]\nmemory_percent = 40\n')
    assert instance.viewer("s1").returncode == 0
    second = instance.viewer("s2")
    assert second.returncode == 1 and "one source may have" in second.stderr, failure(second)
    assert instance.viewer("s3", host="[::1]").returncode == 0  # another source's share
    instance.use("s1")  # in use: no longer counts against 127.0.0.1's share (still against the budget)
    assert instance.viewer("s2").returncode == 0
    instance.use("s3", host="[::1]")
    assert instance.viewer("s4", host="[::1]").returncode == 0
    instance.use("s2")
    assert len(instance.sessions()) == 4  # about 403 MiB
    fifth = instance.viewer("s5")
    assert fifth.returncode == 1 and "memory budget for sessions is taken" in fifth.stderr, failure(fifth)
    assert len(instance.sessions()) == 4
