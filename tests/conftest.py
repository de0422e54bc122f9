"""Shared fixtures: the real program run once per stack under Pulumi's mock runtime."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from support import Stack  # noqa: E402
from tools import mockrt  # noqa: E402


@pytest.fixture(scope="session")
def dev() -> Stack:
    return Stack(mockrt.run_stack("dev"))


@pytest.fixture(scope="session")
def prod() -> Stack:
    return Stack(mockrt.run_stack("prod"))


@pytest.fixture(params=["dev", "prod"], scope="session")
def stack(request, dev, prod) -> Stack:
    return {"dev": dev, "prod": prod}[request.param]


def legacy_nginx(stack: str) -> Stack:
    """A stack on the legacy ingress-nginx entry (entry.kind ingress-nginx)."""
    from support import override

    return Stack(mockrt.run_stack(stack, override(stack, ("entry.kind", "ingress-nginx"))))


@pytest.fixture(scope="session")
def nginx_dev() -> Stack:
    return legacy_nginx("dev")


@pytest.fixture(scope="session")
def nginx_prod() -> Stack:
    return legacy_nginx("prod")


@pytest.fixture(params=["dev", "prod"], scope="session")
def nginx_stack(request, nginx_dev, nginx_prod) -> Stack:
    """Each stack on the legacy ingress-nginx entry."""
    return {"dev": nginx_dev, "prod": nginx_prod}[request.param]
