"""Greeter tests: async tests on a fresh loop each, and wrsessd's real-PAM fixtures (tests/launcher)."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from tests.launcher.conftest import accounts, sandbox, start_daemon  # noqa: F401 - fixtures


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True
