"""Show how a running server instance is doing: its address and identity, whether sessions start
behind a login (and whether the session launcher answers), what viewers must present (the access
key, a client certificate), and its sessions by state. Exit status 1
when it is not running or may not be asked."""

from __future__ import annotations

import argparse
import json

from wayray.admin.live import add_instance_arguments, ask
from wayray.common.errors import EXIT_OK
from wayray.server import admin_protocol as ap

NAME = "status"
HELP = "show a running server instance's state"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    st = ask(args, ap.Status(), ap.StatusAnswer)
    if args.json:
        print(json.dumps(st.to_json(), indent=1))
        return EXIT_OK
    launcher = st.launcher
    if st.sessions_start is ap.SessionsStart.LOGIN and launcher is not None:
        up = "connected" if launcher.connected else "NOT CONNECTED"
        logins = f"login screens through wrsessd ({launcher.socket}: {up})"
    else:
        logins = "no login: sessions run the server's command"
    states = ", ".join(f"{n} {state}" for state, n in (st.by_state or {}).items()) or "none"
    hung = st.not_responding or ()
    if hung:
        states += f"; {len(hung)} NOT RESPONDING: {', '.join(hung)}"
    policy = st.policy or ap.Policy()
    lines = [
        f"wrsrvd {st.name} ({st.mode}), version {st.version}, pid {'-' if st.pid is None else st.pid}",
        f"  listening    udp {', '.join(st.listen)} port {st.port}",
        f"  identity     {st.fingerprint}",
        f"  sessions     {st.sessions} of at most {st.max_sessions} ({states}); {st.viewers} shown",
        f"  starting     {logins}",
        f"  viewers need {_credentials(st)}",
        "  policy       detached timeout "
        + _duration(policy.detached_timeout_s)
        + ", idle logout "
        + _duration(policy.idle_timeout_s)
        + (", password on re-attach" if policy.reauth_on_reattach else ""),
    ]
    if st.pool is not None or st.draining:
        lines.append(f"  pool         {_pool(st)}")
    print("\n".join(lines))
    return EXIT_OK


def _pool(st: ap.StatusAnswer) -> str:
    pool = st.pool
    said = "in no pool"
    if pool is not None:
        shares = "shares the session directory" if pool.shares_directory else "announces itself only"
        said = f"pool {pool.name}, member {pool.member} ({shares})"
    said += "; DRAINED: takes no new sessions (wradm server undrain)" if st.draining else ""
    if pool is not None and pool.key_refused:
        said += f"\n  pool key     REFUSED: this member takes no badges from the pool: {pool.key_refused}"
    if pool is not None and pool.refused_members and not pool.key_refused:
        said += (
            f"\n  refused      {', '.join(pool.refused_members)}: refused at the members' key check "
            "(another pool token key), not taken into the pool (wradm pool says why)"
        )
    return said


def _credentials(st: ap.StatusAnswer) -> str:
    """What a viewer must present before anything starts for it (from the status answer)."""
    needs = []
    if st.access_key:
        where = st.access_key_file
        needs.append(f"the access key in {where}" if where else "the access key")
    if st.client_ca:
        needs.append(f"a client certificate from {st.client_ca}")
    login = st.sessions_start is ap.SessionsStart.LOGIN
    if needs:
        return " and ".join(needs) + (", then a login" if login else "")
    if login:
        return "a login (no access key, no client certificate: whoever reaches the port gets a login screen)"
    return "NOTHING: whoever reaches the port gets a session running the server's command"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
