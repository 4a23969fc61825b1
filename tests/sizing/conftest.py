"""The sizing tests use the usage fixtures."""

from tests.usage.conftest import usage_db  # noqa: F401
