"""The real programs the tests run (installed by tools/install-validators.sh, which
`make test` calls). Locally a missing one skips its tests with the reason; in CI
(`CI=true`) a missing validator fails them, so a broken install can never turn into a
green run that checked nothing."""

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str, how: str = "tools/install-validators.sh installs it") -> None:
    """Skip (locally) or fail (CI) a test whose validator is absent."""
    message = f"{what} is not installed ({how}; CI runs it)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require(name: str, how: str = "tools/install-validators.sh installs it") -> str:
    """The path of a command on PATH, or skip/fail as `missing` says."""
    path = shutil.which(name)
    if not path:
        missing(name, how)
    return path
