"""Fixtures for device tests (helpers live in hwtest_util)."""

from hwtest_util import capture, irq  # noqa: F401
