from tests.e2e.harness import harness

__all__ = ["harness"]
