"""Stand-in for wrlogin (the real greeter comes later): logs in with scripted answers.

The script file is JSON: {"username": str or null, "answers": [str, ...], "start": bool, and to try
what a greeter must not: "reuse_ticket" (log in again after), "parallel_ticket" (meanwhile),
"start_env" (choose the user session's environment)}. Prompts are
answered from "answers" in order; info and error messages are acknowledged. The transcript (every
message and the final outcome) is written to --transcript. The repository root is put on sys.path
so the greeter side of the real client library (wayray.launcher.client, stdlib-only) is used.
"""

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report  # noqa: E402

from wayray.launcher import protocol  # noqa: E402
from wayray.launcher.client import greeter_client  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--script", required=True)
    p.add_argument("--transcript", required=True)
    args = p.parse_args()
    deadline = time.monotonic() + 60
    while not os.path.exists(args.script):  # the test writes it once it knows the greeter is up
        if time.monotonic() > deadline:
            sys.exit("no script")
        time.sleep(0.02)
    with open(args.script) as f:
        script = json.load(f)
    transcript = {"identity": _report.identity(), "messages": []}
    answers = list(script.get("answers", []))
    client, ticket = greeter_client()
    with client:

        def answer(msg: protocol.AuthMessage):
            transcript["messages"].append([msg.auth_message_type.value, msg.auth_message])
            if "parallel_ticket" in script and "parallel" not in transcript:
                # A second login with the same ticket while this one is in its conversation.
                second, _ = greeter_client()
                with second:
                    transcript["parallel"] = second.request(protocol.CreateSession(ticket=ticket)).to_json()
            if msg.auth_message_type.is_prompt:
                return answers.pop(0) if answers else ""
            return None

        outcome = client.login(
            protocol.CreateSession(ticket=ticket, username=script.get("username")), answer
        )
        transcript["login"] = outcome.to_json()
        if isinstance(outcome, protocol.Success) and "start_env" in script:
            asked = protocol.StartSession(env=script["start_env"])
            transcript["start_env"] = client.request(asked).to_json()
        if isinstance(outcome, protocol.Success) and script.get("start", True):
            transcript["start"] = client.request(protocol.StartSession()).to_json()
        if "reuse_ticket" in script:
            again = client.request(protocol.CreateSession(ticket=ticket))
            transcript["reuse"] = again.to_json()
    _report.write(args.transcript, transcript)
    time.sleep(3600)  # a real greeter stays until its session ends


if __name__ == "__main__":
    main()
