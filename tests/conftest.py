import os

import pytest

# Before any torch import in this process: do not spin threads while the sandbox holds a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh SYMDISC_HOME (run database) for one test."""
    monkeypatch.setenv("SYMDISC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def gate():
    from symdisc.judge.gateproc import GateClient

    with GateClient() as client:
        yield client


@pytest.fixture(scope="session")
def sandbox():
    from symdisc.judge.sandbox import Sandbox

    with Sandbox(timeout_s=10) as sb:
        yield sb
