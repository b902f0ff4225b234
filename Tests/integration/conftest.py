"""pytest fixtures for the silt integration tests.

`node` gives a started single silt broker on free loopback ports with a fresh
data dir; it is always killed at teardown, and its stderr is printed when the
test fails. `node_factory(**overrides)` starts nodes with extra --override keys.
"""
from __future__ import annotations

import shutil
import sys

import pytest

from silt_helpers import SILT_BIN, Node


def pytest_report_header(config):
    return [f"silt binary: {SILT_BIN} ({'present' if SILT_BIN.exists() else 'MISSING'})",
            f"kcat: {shutil.which('kcat') or 'MISSING'}"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request) -> bool:
    return any(getattr(getattr(request.node, "rep_" + w, None), "failed", False) for w in ("setup", "call"))


@pytest.fixture
def node_factory(request, tmp_path):
    nodes: list[Node] = []

    def make(overrides: dict | None = None, start: bool = True, extra_args: list[str] | None = None) -> Node:
        n = Node(tmp_path / f"node{len(nodes)}", {k: str(v) for k, v in (overrides or {}).items()}, extra_args)
        nodes.append(n)
        if start:
            n.start()
        return n

    yield make
    failed = _failed(request)
    for n in nodes:
        n.kill()
        if failed:
            sys.stdout.write("\n" + n.log_tail(300) + "\n")


@pytest.fixture
def node(node_factory) -> Node:
    return node_factory()
