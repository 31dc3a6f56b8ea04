"""Every async test runs on asyncio, asyncio with uvloop, and trio, through anyio's pytest plugin.

`anyio_mode = "auto"` (pyproject.toml) hands every `async def` test to the plugin, which runs it
once per `anyio_backend` parameter below.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from redis_server import RedisServer

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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port of 127.0.0.1, for the whole run (tests/redis_server.py).

    Tests that share it keep to a namespace of their own (`redis_namespace`); a test that
    restarts or stops its server starts one of its own (`RedisServer()`).
    """
    from redis_server import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_namespace() -> str:
    """A namespace of this test's own on the shared server: no test sees another's keys."""
    return f"test-{uuid.uuid4().hex[:12]}"
