"""Helpers shared by the test suites; importable from child processes as ``tests.helpers``."""
