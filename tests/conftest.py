"""Every async test runs on asyncio, asyncio with uvloop, and trio, through anyio's pytest plugin.

`anyio_mode = "auto"` (pyproject.toml) hands every `async def` test to the plugin, which runs it
once per `anyio_backend` parameter below.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

BACKENDS: list[Any] = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param(("trio", {}), id="trio"),
]
if sys.platform == "win32":  # pragma: no cover - uvloop does not exist there
    BACKENDS.pop(1)


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def backend_name(anyio_backend: Any) -> str:
    """`asyncio` or `trio`: the name to pass to `anyio.run(backend=...)`."""
    return anyio_backend[0]
