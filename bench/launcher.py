"""wrsessd latencies with real PAM: login, session start, greeter start, end; python-pam alongside.

Needs root (throwaway user, PAM service file; everything is removed afterwards). The session
compositor and greeter are the test stand-ins (tests/launcher/standins): a Python process that
creates its socket at once, so "start" measures wrsessd's own work (worker exec, PAM session,
privilege drop, spawning, socket wait) plus one interpreter start-up, not a real compositor's.
The peer is python-pam's ``authenticate`` in-process on the same PAM service: the cost of PAM itself
without a worker process or the IPC. Run: ``sudo .venv/bin/python -m bench.launcher``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from tests.launcher.harness import Daemon, Sandbox, answer_with, throwaway_accounts
from wayray.launcher import protocol as p

ROUNDS = 15


def summary(name: str, samples: list[float]) -> None:
    s = sorted(samples)
    q = statistics.quantiles(s, n=10)
    median, p90, top = statistics.median(s) * 1e3, q[8] * 1e3, s[-1] * 1e3
    print(f"  {name:44} median {median:7.1f} ms   p90 {p90:7.1f} ms   max {top:7.1f} ms")


def main() -> int:
    if os.geteuid() != 0:
        print("bench.launcher needs root (throwaway user, PAM service file)", file=sys.stderr)
        return 1
    import pam as python_pam  # the python-pam package, the peer

    with throwaway_accounts() as acc:
        sb = Sandbox(acc)
        sb.install_pam()
        sb.write_settings(sb.settings(stop_timeout_s=3.0, greeter_linger_s=600.0))
        daemon = Daemon(sb)
        try:
            daemon.start()
            logins, starts, kills, greeters, peer = [], [], [], [], []
            with daemon.client() as c:
                for i in range(ROUNDS):
                    t = time.perf_counter()
                    create = p.CreateSession(username=acc.user, token=f"t{i}", token_kind="badge")
                    assert isinstance(c.login(create, answer_with(acc.password)), p.Success)
                    logins.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    started = c.call(p.StartSession())
                    starts.append(time.perf_counter() - t)
                    assert isinstance(started, p.SessionStarted)
                    t = time.perf_counter()
                    c.kill_session(started.session.session_id)
                    kills.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    g = c.call(p.CreateGreeterSession(token=f"g{i}", token_kind="badge"))
                    greeters.append(time.perf_counter() - t)
                    assert isinstance(g, p.SessionStarted)
                    c.kill_session(g.session.session_id)
                    handle = python_pam.pam()
                    t = time.perf_counter()
                    assert handle.authenticate(acc.user, acc.password, service=sb.service)
                    peer.append(time.perf_counter() - t)
            print(f"wrsessd, {ROUNDS} rounds, pam_unix (nodelay), stand-in compositor and greeter")
            summary("login (create_session … success)", logins)
            summary("python-pam authenticate, in-process (peer)", peer)
            summary("start_session → session_started", starts)
            summary("create_greeter_session → session_started", greeters)
            summary("kill_session → success (PAM closed)", kills)
        finally:
            daemon.end_all_sessions()
            daemon.stop()
            sb.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
