"""`with_cancelation` and `CancelableDependency` (integrations/fastapi.py): what FastAPI reads
from a decorated endpoint, and the answers it gives, in process on every backend."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations below.

import inspect
from typing import Annotated, Any

import anyio
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi import Depends, FastAPI, Request  # noqa: E402

from hother.cancelable import (  # noqa: E402
    Cancelable,
    OperationStatus,
    TimeoutCancelation,
    current_operation,
)
from hother.cancelable.integrations.fastapi import (  # noqa: E402
    CancelableDependency,
    RequestCancelationMiddleware,
    cancelable_dependency,
    with_cancelation,
)

# httpx 0.28's ASGITransport leaves its request body generator unfinished when the app answers
# before reading the whole body, which the middleware's watcher may do; trio then warns when
# the generator is collected (encode/httpx#3686). Not a leak of ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)


def asgi_client(app: Any) -> Any:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_cancellation_without_a_message_is_answered_with_its_reason() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)

    @app.get("/")
    @with_cancelation()
    async def index() -> None:
        operation = current_operation()
        assert operation is not None
        await operation.cancel()
        await anyio.sleep(30)

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.json()) == (503, {"detail": "request cancelled: manual"})


async def test_without_a_timeout_or_the_middleware_the_endpoint_runs_as_an_operation() -> None:
    seen: list[Cancelable | None] = []

    @with_cancelation()
    async def endpoint(value: int) -> int:
        seen.append(current_operation())
        await anyio.lowlevel.checkpoint()
        return value + 1

    assert await endpoint(1) == 2
    [operation] = seen
    assert operation is not None
    assert operation.context.name == endpoint.__qualname__
    assert operation.context.status is OperationStatus.COMPLETED


async def test_a_request_parameter_in_annotated_form_is_the_one_used() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)

    async def show(request: Annotated[Request, "the request"], q: str) -> dict[str, str]:
        return {"path": request.url.path, "q": q}

    decorated = with_cancelation(timeout=5)(show)
    assert inspect.signature(decorated) == inspect.signature(show)  # nothing hidden added
    app.get("/show")(decorated)

    async with asgi_client(app) as client:
        response = await client.get("/show", params={"q": "x"})
    assert response.json() == {"path": "/show", "q": "x"}


def test_the_hidden_request_goes_before_var_keyword_parameters() -> None:
    async def search(q: str, **filters: str) -> list[str]:
        return [q, *filters.values()]

    parameters = list(inspect.signature(with_cancelation()(search)).parameters.values())
    assert [p.name for p in parameters[::2]] == ["q", "filters"]
    hidden = parameters[1]
    assert (hidden.kind, hidden.annotation) == (inspect.Parameter.KEYWORD_ONLY, Request)


async def test_a_var_keyword_endpoint_gets_its_keywords_without_the_hidden_request() -> None:
    @with_cancelation(timeout=5)
    async def search(q: str, **filters: str) -> list[str]:
        return [q, *filters]

    assert await search("books", color="red", size="s") == ["books", "color", "size"]


def test_an_endpoint_may_not_declare_the_hidden_parameters_name() -> None:
    async def clash(hother_cancelable_request: int) -> int:
        return hother_cancelable_request

    with pytest.raises(TypeError, match=r"must not declare a parameter named 'hother_cancel"):
        with_cancelation()(clash)


def test_annotations_that_do_not_resolve_are_kept_as_written() -> None:
    async def later(item: "NotDefinedYet") -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    parameters = inspect.signature(with_cancelation()(later)).parameters
    assert parameters["item"].annotation == "NotDefinedYet"


async def test_a_dependency_without_the_middleware_gives_a_plain_operation() -> None:
    app = FastAPI()
    plain = CancelableDependency(name="plain work")
    bounded = CancelableDependency(timeout=0.05)

    @app.get("/")
    async def index(
        cancel: Annotated[Cancelable, Depends(plain)],
        short: Annotated[Cancelable, Depends(bounded)],
    ) -> dict[str, Any]:
        async with cancel:
            await anyio.lowlevel.checkpoint()
        async with short:
            pass
        return {"name": cancel.context.name, "status": cancel.context.status.value}

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert response.json() == {"name": "plain work", "status": "completed"}
    assert (plain.timeout, bounded.timeout) == (None, 0.05)
    assert repr(bounded) == (
        "CancelableDependency(timeout=0.05, name=None, register_globally=False, "
        "deadline_header='Request-Timeout-Ms')"
    )


async def test_0_11s_direct_call_of_cancelable_dependency_with_a_timeout() -> None:
    # 0.11: `await cancelable_dependency(request, timeout=...)` in a dependency of one's own.
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)

    async def bounded(request: Request) -> Cancelable:
        with pytest.warns(DeprecationWarning, match=r"CancelableDependency\(timeout=\.\.\.\)"):
            return await cancelable_dependency(request, timeout=0.05)

    @app.get("/slow")
    async def slow(cancel: Annotated[Cancelable, Depends(bounded)]) -> dict[str, Any]:
        try:
            async with cancel:
                await anyio.sleep(10)
        except TimeoutCancelation as exc:
            return {"reason": exc.reason.value, "message": exc.message}
        return {}

    @app.get("/plain")
    async def plain(cancel: Annotated[Cancelable, Depends(cancelable_dependency)]) -> None:
        pass

    async with asgi_client(app) as client:
        response = await client.get("/slow")
    assert response.json() == {"reason": "timeout", "message": "operation timed out after 0.05 s"}
    # Unlike 0.11, clients cannot set it: FastAPI sees the request only.
    parameters = app.openapi()["paths"]["/plain"]["get"].get("parameters", [])
    assert parameters == []
