"""The fuzzing tier uses the end-to-end harness for the tests that run a real wrsrvd."""

from tests.e2e.harness import harness

__all__ = ["harness"]
