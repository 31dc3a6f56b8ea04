"""0.11's import paths keep importing, warn, and give the public objects; `__version__`.

Every module path of 0.11.3 (`hother.cancelable.core.token`, `.utils.decorators`,
`.sources.timeout`, `.types`, `.streaming.simulator.config`, ...) imports with a
`DeprecationWarning` that names the public import, pointing at the import statement, and its
names are the very objects of the public modules. A name 0.11 had and this version does not
raises an `ImportError` that says what to use instead. The table below is written from 0.11.3's
source, not from the library's own table.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

import anyio
import pytest

import hother.cancelable
from hother.cancelable import sources, testing

# 0.11.3's module paths that held names: path -> (where those names live now, the names).
MOVED: dict[str, tuple[ModuleType, list[str]]] = {
    "hother.cancelable.core.cancelable": (hother.cancelable, ["Cancelable", "current_operation"]),
    "hother.cancelable.core.exceptions": (
        hother.cancelable,
        [
            "CancelationError",
            "TimeoutCancelation",
            "ManualCancelation",
            "SignalCancelation",
            "ConditionCancelation",
            "ParentCancelation",
        ],
    ),
    "hother.cancelable.core.models": (
        hother.cancelable,
        ["OperationStatus", "CancelationReason", "OperationContext"],
    ),
    "hother.cancelable.core.registry": (hother.cancelable, ["OperationRegistry"]),
    "hother.cancelable.core.token": (
        hother.cancelable,
        ["CancelationToken", "LinkedCancelationToken"],
    ),
    "hother.cancelable.types": (
        hother.cancelable,
        [
            "ProgressCallback",
            "StatusCallback",
            "ErrorCallback",
            "ProgressCallbackType",
            "StatusCallbackType",
            "ErrorCallbackType",
            "ensure_cancelable",
        ],
    ),
    "hother.cancelable.sources.base": (sources, ["CancelationSource"]),
    "hother.cancelable.sources.timeout": (sources, ["TimeoutSource"]),
    "hother.cancelable.sources.signal": (sources, ["SignalSource"]),
    "hother.cancelable.sources.condition": (
        sources,
        ["ConditionSource", "ResourceConditionSource"],
    ),
    "hother.cancelable.sources.composite": (
        sources,
        ["CompositeSource", "AnyOfSource", "AllOfSource"],
    ),
    "hother.cancelable.utils.decorators": (
        hother.cancelable,
        [
            "cancelable",
            "with_timeout",
            "with_current_operation",
            "cancelable_method",
            "cancelable_with_token",
            "cancelable_with_signal",
            "cancelable_with_condition",
            "cancelable_combine",
            "with_cancelable",
        ],
    ),
    "hother.cancelable.utils.streams": (
        hother.cancelable,
        ["cancelable_stream", "CancelableAsyncIterator", "chunked_cancelable_stream"],
    ),
    "hother.cancelable.utils.anyio_bridge": (
        hother.cancelable,
        ["AnyioBridge", "call_soon_threadsafe"],
    ),
    "hother.cancelable.utils.threading_bridge": (hother.cancelable, ["ThreadSafeRegistry"]),
    "hother.cancelable.utils.testing": (
        testing,
        [
            "MockCancelationToken",
            "OperationRecorder",
            "create_slow_stream",
            "assert_cancelation_within",
            "CancelationScenario",
        ],
    ),
    "hother.cancelable.streaming.simulator": (testing, ["StreamConfig", "simulate_stream"]),
    "hother.cancelable.streaming.simulator.config": (testing, ["StreamConfig"]),
    "hother.cancelable.streaming.simulator.simulator": (testing, ["simulate_stream"]),
}

# Names 0.11.3 had that are gone: (path, name, what the error says to use instead).
GONE = [
    ("hother.cancelable.core.cancelable", "LinkState", "no replacement"),
    ("hother.cancelable.types", "P", "typing.TypeVar or typing.ParamSpec"),
    ("hother.cancelable.types", "R", "typing.TypeVar or typing.ParamSpec"),
    ("hother.cancelable.types", "T", "typing.TypeVar or typing.ParamSpec"),
    ("hother.cancelable.utils.context_bridge", "ContextBridge", "cancel.run_in_thread"),
    ("hother.cancelable.utils.testing", "run_with_timeout_test", "assert_cancelation_within"),
    ("hother.cancelable.utils.testing", "sample_async_operation", "create_slow_stream"),
    ("hother.cancelable.streaming.simulator", "get_random_chunk_size", "min_tokens=.*max_tokens="),
    ("hother.cancelable.streaming.simulator.utils", "get_random_chunk_size", "min_tokens="),
]

# 0.11's packages that held no names of their own.
EMPTY_PACKAGES = ["hother.cancelable.core", "hother.cancelable.utils"]

OLD_PATHS = {
    *MOVED,
    *(path for path, _, _ in GONE),
    *EMPTY_PACKAGES,
    "hother.cancelable.utils.logging",
}


def _forget_old_modules() -> None:
    """Make the next import of an old path a first import (and so warn again)."""
    for name in [name for name in sys.modules if name in OLD_PATHS]:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:  # or `from parent import child` would find it there
            vars(sys.modules[parent]).pop(child, None)


@pytest.fixture(autouse=True)
def first_imports() -> Iterator[None]:
    _forget_old_modules()
    yield
    _forget_old_modules()


def _deprecated(path: str) -> str:
    public, names = MOVED[path]
    return re.escape(f"{path} is deprecated: import {', '.join(names)} from {public.__name__}")


def _import_parent(path: str) -> None:
    """Import the old package above `path` first, which warns too (`streaming.simulator`)."""
    parent = path.rpartition(".")[0]
    if parent in MOVED:
        with pytest.warns(DeprecationWarning, match=_deprecated(parent)):
            importlib.import_module(parent)


def _imported(statements: str) -> list[tuple[str, int, str]]:
    """Run import statements here; the (file, line, module) of each warning they issued."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        exec(compile(statements, __file__, "exec"), {})
    assert {warning.category for warning in record} <= {DeprecationWarning}
    return [
        (warning.filename, warning.lineno, str(warning.message).split(" is deprecated")[0])
        for warning in record
    ]


# -- old paths: a warning, and the public objects -------------------------------------------------


@pytest.mark.parametrize("path", MOVED)
def test_an_old_path_warns_naming_the_public_import(path: str) -> None:
    _import_parent(path)
    with pytest.warns(DeprecationWarning, match=_deprecated(path)) as record:
        __import__(path)  # a builtin: no frame between this line and the import machinery
    assert [warning.filename for warning in record] == [__file__] * len(record)


@pytest.mark.parametrize("path", MOVED)
def test_an_old_paths_names_are_the_public_objects(path: str) -> None:
    public, names = MOVED[path]
    _import_parent(path)
    with pytest.warns(DeprecationWarning, match=_deprecated(path)):
        old = importlib.import_module(path)
    for name in names:
        assert getattr(old, name) is getattr(public, name), name
    assert sorted(old.__all__) == sorted(names)


def test_the_warning_points_at_the_import_statement() -> None:
    statements = (
        "import hother.cancelable.core.token\n"
        "from hother.cancelable.core import models\n"
        "from hother.cancelable.utils.decorators import cancelable\n"
        "import hother.cancelable.streaming.simulator.config as config\n"
    )
    assert _imported(statements) == [
        (__file__, 1, "hother.cancelable.core.token"),
        (__file__, 2, "hother.cancelable.core.models"),
        (__file__, 3, "hother.cancelable.utils.decorators"),
        (__file__, 4, "hother.cancelable.streaming.simulator"),
        (__file__, 4, "hother.cancelable.streaming.simulator.config"),
    ]


def test_old_names_import_as_0_11_code_wrote_them() -> None:
    with pytest.warns(DeprecationWarning, match="core.token is deprecated"):
        from hother.cancelable.core.token import CancelationToken, LinkedCancelationToken
    with pytest.warns(DeprecationWarning, match="sources.condition is deprecated"):
        from hother.cancelable.sources.condition import ConditionSource
    _import_parent("hother.cancelable.streaming.simulator.config")
    with pytest.warns(DeprecationWarning, match="simulator.config is deprecated"):
        from hother.cancelable.streaming.simulator.config import StreamConfig
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match="core.exceptions is deprecated"):
        exec("from hother.cancelable.core.exceptions import *", namespace)
    assert CancelationToken is hother.cancelable.CancelationToken
    assert LinkedCancelationToken is hother.cancelable.LinkedCancelationToken
    assert ConditionSource is sources.ConditionSource
    assert StreamConfig is testing.StreamConfig
    assert namespace["TimeoutCancelation"] is hother.cancelable.TimeoutCancelation
    assert len([name for name in namespace if name.endswith(("Error", "Cancelation"))]) == 6


def test_an_old_submodule_imports_as_an_attribute_of_its_package() -> None:
    _import_parent("hother.cancelable.streaming.simulator.simulator")
    with pytest.warns(DeprecationWarning, match="simulator.simulator is deprecated"):
        from hother.cancelable.streaming.simulator import simulator
    assert simulator.simulate_stream is testing.simulate_stream


async def test_code_written_for_0_11_runs_with_its_imports() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        from hother.cancelable.core.cancelable import Cancelable
        from hother.cancelable.core.exceptions import TimeoutCancelation
        from hother.cancelable.core.models import OperationStatus
        from hother.cancelable.core.token import CancelationToken
        from hother.cancelable.utils.decorators import cancelable
        from hother.cancelable.utils.streams import cancelable_stream
    assert [warning.category for warning in record] == [DeprecationWarning] * 6

    progress: list[str] = []

    @cancelable(timeout=5, name="double")
    async def double(number: int, cancelable: Cancelable | None = None) -> int:
        assert cancelable is not None
        await cancelable.report_progress(f"doubling {number}")
        return 2 * number

    token = CancelationToken()
    async with Cancelable.with_token(token, name="old") as cancel:
        cancel.on_progress(lambda operation_id, message, metadata: progress.append(message))
        await cancel.report_progress("started")
        items = [item async for item in cancelable_stream(range(3), timeout=5)]
        assert await double(21) == 42
    assert cancel.context.status is OperationStatus.COMPLETED
    assert items == [0, 1, 2]
    assert progress == ["started"]

    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.01):
            await anyio.sleep(5)


# -- names that are gone -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "name", "instead"), GONE)
def test_a_gone_name_says_what_to_use_instead(path: str, name: str, instead: str) -> None:
    _import_parent(path)
    deprecated = f"{re.escape(path)} is deprecated:.*{name} is gone"
    with pytest.warns(DeprecationWarning, match=deprecated):
        old = importlib.import_module(path)
    with pytest.raises(ImportError, match=rf"{re.escape(path)}\.{name} is gone: .*{instead}"):
        getattr(old, name)
    assert name not in dir(old)


def test_importing_a_gone_name_says_what_to_use_instead() -> None:
    # `from module import name` keeps the error's message (an AttributeError's would be lost).
    with (
        pytest.warns(DeprecationWarning, match="context_bridge is deprecated"),
        pytest.raises(ImportError, match=r"ContextBridge is gone: .*cancel\.run_in_thread"),
    ):
        from hother.cancelable.utils.context_bridge import ContextBridge  # noqa: F401
    with (
        pytest.warns(DeprecationWarning, match="streaming.simulator is deprecated"),
        pytest.raises(ImportError, match=r"get_random_chunk_size is gone: .*StreamConfig"),
    ):
        from hother.cancelable.streaming.simulator import get_random_chunk_size  # noqa: F401


def test_an_old_module_has_no_name_0_11_did_not_have() -> None:
    with pytest.warns(DeprecationWarning, match="core.cancelable is deprecated"):
        import hother.cancelable.core.cancelable as old
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = old.nope
    assert getattr(old, "nope", None) is None
    assert not hasattr(old, "nope")


def test_get_logger_works_as_in_0_11() -> None:
    with pytest.warns(
        DeprecationWarning,
        match=re.escape("utils.logging is deprecated: use logging.getLogger(__name__)"),
    ):
        from hother.cancelable.utils.logging import get_logger
    assert get_logger() is logging.getLogger(__name__)  # the calling module's logger
    assert get_logger("app") is logging.getLogger("app")


# -- what does not warn, and what does not exist -----------------------------------------------


def test_importing_the_package_and_its_public_modules_does_not_warn() -> None:
    code = (
        "import sys, hother.cancelable, hother.cancelable.sources, hother.cancelable.testing\n"
        "import hother.cancelable.streaming, hother.cancelable.core, hother.cancelable.utils\n"
        "assert 'importlib.metadata' not in sys.modules, 'the version is read when asked for'\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=30)


def test_0_11s_empty_packages_import_without_a_warning() -> None:
    # 0.11's `core` and `utils` held no names: the warning comes from the module that does.
    for path in EMPTY_PACKAGES:
        package = importlib.import_module(path)
        assert package.__path__ == []
    with pytest.warns(DeprecationWarning, match="core.registry is deprecated"):
        from hother.cancelable.core import registry
    assert registry.OperationRegistry is hother.cancelable.OperationRegistry


def test_an_unknown_old_path_is_not_found() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"hother\.cancelable\.core\.nope"):
        import hother.cancelable.core.nope
    with pytest.raises(ModuleNotFoundError, match=r"'hother\.cancelable\.nope'"):
        import hother.cancelable.nope  # noqa: F401
    with pytest.raises(ImportError, match="cannot import name 'nope'"):
        from hother.cancelable.utils import nope  # noqa: F401


def test_the_streaming_module_is_still_the_public_one() -> None:
    from hother.cancelable import streaming

    assert streaming.StreamConfig is testing.StreamConfig
    assert streaming.__file__ is not None
    assert streaming.__file__.endswith("streaming.py")


# -- __version__ -------------------------------------------------------------------------------


def test_version_is_the_installed_distributions() -> None:
    assert hother.cancelable.__version__ == importlib.metadata.version("hother-cancelable")
    assert "__version__" not in hother.cancelable.__all__


def test_version_when_the_distribution_is_not_found() -> None:
    code = (
        "import importlib.metadata, sys, hother.cancelable\n"
        "sys.path[:] = []  # no distribution can be found any more\n"
        "print(hother.cancelable.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=30
    )
    assert result.stdout == "0.0.0+unknown\n"


def test_an_unknown_attribute_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = hother.cancelable.nope


def test_reloading_the_package_keeps_one_finder_of_old_paths() -> None:
    def finders() -> list[object]:
        return [f for f in sys.meta_path if type(f).__module__ == "hother.cancelable._legacy"]

    assert len(finders()) == 1
    importlib.reload(hother.cancelable)
    assert len(finders()) == 1
    with pytest.warns(DeprecationWarning, match=_deprecated("hother.cancelable.core.registry")):
        from hother.cancelable.core.registry import OperationRegistry
    assert OperationRegistry is hother.cancelable.OperationRegistry
