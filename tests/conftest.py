"""Fixtures shared by the tests of seeds and sweeps."""

import pytest


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A machine without data or network, in tmp_path: every process (workers too) uses the offline stand-in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    return tmp_path
