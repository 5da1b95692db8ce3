"""The registry's launcher tests reuse wrsessd's fixtures (throwaway accounts, PAM files, a daemon)."""

from tests.launcher.conftest import accounts, sandbox, start_daemon  # noqa: F401
