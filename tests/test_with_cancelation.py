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


# -- the caller's budget, read by the dependency without the middleware ---------------------------


def budget_message(milliseconds: int, header: str = "Request-Timeout-Ms") -> str:
    return f"caller's budget of {milliseconds} ms ({header}) reached"


def dependency_app(
    dependency: CancelableDependency, middleware: dict[str, Any] | None = None
) -> tuple[FastAPI, list[str]]:
    """An app whose endpoint answers how its operation ended; `middleware` options add it."""
    app = FastAPI()
    if middleware is not None:
        app.add_middleware(RequestCancelationMiddleware, **middleware)
    ran: list[str] = []

    @app.get("/")
    async def index(cancel: Annotated[Cancelable, Depends(dependency)]) -> dict[str, Any]:
        ran.append("endpoint")
        start = anyio.current_time()
        try:
            async with cancel:
                await anyio.sleep(0.5)
        except TimeoutCancelation as exc:
            return {"message": exc.message, "after": anyio.current_time() - start}
        return {"message": None, "after": anyio.current_time() - start}

    return app, ran


async def get(app: FastAPI, headers: Any = None) -> Any:
    async with asgi_client(app) as client:
        return await client.get("/", headers=headers)


async def test_the_dependency_without_the_middleware_ends_its_operation_at_the_budget() -> None:
    app, _ = dependency_app(CancelableDependency(timeout=5))
    response = await get(app, {"Request-Timeout-Ms": "100"})
    assert response.json()["message"] == budget_message(100)
    assert 0.1 * 0.9 < response.json()["after"] < 0.1 + 2


async def test_the_dependency_keeps_its_own_timeout_when_it_is_shorter_than_the_budget() -> None:
    app, _ = dependency_app(CancelableDependency(timeout=0.1))
    response = await get(app, {"Request-Timeout-Ms": "5000"})
    assert response.json()["message"] == "operation timed out after 0.1 s"


async def test_the_dependency_without_a_timeout_ends_at_the_budget() -> None:
    app, _ = dependency_app(CancelableDependency())
    bounded = await get(app, {"Request-Timeout-Ms": "100"})
    unbounded = await get(app)
    assert bounded.json()["message"] == budget_message(100)
    assert unbounded.json()["message"] is None  # ran its 0.5 s


@pytest.mark.parametrize(
    ("value", "status", "detail"),
    [
        (
            "soon",
            400,
            "Request-Timeout-Ms must be a whole number of milliseconds from 0 to 31536000000, "
            "got 'soon'",
        ),
        ("0", 504, f"request timed out: {budget_message(0)}"),
    ],
    ids=["malformed", "spent"],
)
async def test_the_dependency_answers_a_malformed_or_spent_budget_before_the_endpoint(
    value: str, status: int, detail: str
) -> None:
    app, ran = dependency_app(CancelableDependency(timeout=5))
    response = await get(app, {"Request-Timeout-Ms": value})
    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert ran == []


async def test_the_dependency_reads_its_own_header_name_or_none() -> None:
    custom, _ = dependency_app(CancelableDependency(deadline_header="X-Budget-Ms"))
    response = await get(custom, {"X-Budget-Ms": "100", "Request-Timeout-Ms": "abc"})
    assert response.json()["message"] == budget_message(100, "X-Budget-Ms")
    ignoring, _ = dependency_app(CancelableDependency(deadline_header=None))
    response = await get(ignoring, {"Request-Timeout-Ms": "abc"})
    assert (response.status_code, response.json()["message"]) == (200, None)


async def test_under_the_middleware_the_dependency_leaves_the_budget_to_it() -> None:
    # The middleware's deadline_header is the app's one setting: the dependency reads nothing.
    app, _ = dependency_app(CancelableDependency(), middleware={"deadline_header": None})
    response = await get(app, {"Request-Timeout-Ms": "abc"})
    assert (response.status_code, response.json()["message"]) == (200, None)
    response = await get(app, {"Request-Timeout-Ms": "100"})
    assert (response.status_code, response.json()["message"]) == (200, None)
    # Reading it, the middleware's limit carries the budget: the operation ends at it once.
    app, _ = dependency_app(CancelableDependency(), middleware={})
    response = await get(app, {"Request-Timeout-Ms": "100"})
    assert response.json()["message"] == budget_message(100)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: CancelableDependency(deadline_header=3), TypeError, "deadline_header must be"),
        (lambda: CancelableDependency(deadline_header=""), ValueError, "deadline_header must"),
        (
            lambda: CancelableDependency(deadline_header="Request Timeout"),
            ValueError,
            "deadline_header must be an HTTP header name, got 'Request Timeout'",
        ),
        (
            lambda: RequestCancelationMiddleware(FastAPI(), deadline_header=b"X-Budget"),
            TypeError,
            "deadline_header must be a header name",
        ),
        (
            lambda: RequestCancelationMiddleware(FastAPI(), deadline_header="X-Budget:"),
            ValueError,
            "deadline_header must be an HTTP header name, got 'X-Budget:'",
        ),
    ],
)
def test_a_deadline_header_that_is_no_header_name_is_refused(
    build: Any, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        build()
