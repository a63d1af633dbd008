"""autolog: one line, ``autolog.autolog()``, and every training call is tracked.

``import autolog`` is cheap (ARCHITECTURE.md rule 3): the public names below
are resolved on first use (PEP 562), so importing the package loads neither a
framework nor the tracking machinery; only wrapt, which the patch manager is
built on.

Quick start::

    import autolog
    autolog.autolog()                      # patch every installed framework
    with autolog.start_run(run_name="rf"):
        model.fit(X, y)                    # params, metrics and model logged
        autolog.log_metric("extra", 1.0)
"""

from __future__ import annotations

import importlib

# wrapt is the one module of ours loaded up front: the patch manager is built
# on it, and `autolog.autolog()` (budget 10 ms) is what nearly every script
# calls next. It costs ~6 ms of `import autolog`'s 30 ms (inspect, mostly).
import wrapt  # noqa: F401

from autolog.tracking import run_hooks as _run_hooks

TYPE_CHECKING = False  # typing costs ~7 ms on a bare interpreter; checkers honour this

# Provenance (git commit, machine, requirements, ... of every new run) sits above
# the tracking API, which imports nothing of it: the package pushes it into the
# tracking API's run hooks here, before any run can start (every import of a
# part of autolog runs this file first). Provenance itself loads at the first run.
_run_hooks.add_tag_source(_run_hooks.lazy("autolog.provenance:system_tags"))
_run_hooks.add_run_started(_run_hooks.lazy("autolog.provenance:run_started"))

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for name in names:
        _EXPORTS[name] = module


_export(
    "autolog.tracking.fluent",
    "set_tracking_uri",
    "get_tracking_uri",
    "set_experiment",
    "get_experiment",
    "get_experiment_by_name",
    "create_experiment",
    "search_experiments",
    "set_experiment_tag",
    "set_experiment_tags",
    "start_run",
    "end_run",
    "active_run",
    "last_active_run",
    "get_run",
    "search_runs",
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "set_tag",
    "set_tags",
    "delete_tag",
    "log_artifact",
    "log_artifacts",
    "log_text",
    "log_dict",
    "log_figure",
    "log_image",
    "flush",
)
_export("autolog.tracking.client", "Client")
_export(
    "autolog.tracking.entities",
    "Experiment",
    "FileInfo",
    "Metric",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "ViewType",
)
_export("autolog.integration", "autolog", "status", "register", "Integration")
_export("autolog.models", "log_model", "load_model", "Flavor")
_export(
    "autolog.errors",
    "AutologError",
    "InvalidParameterError",
    "InvalidFilterError",
    "ParamOverwriteError",
    "ResourceNotFoundError",
    "ResourceAlreadyExistsError",
    "RunStateError",
    "StoreError",
    "TrackingWriteError",
    "IntegrationError",
    "ModelError",
    "MissingDependencyError",
    "AutologWarning",
)

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autolog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from autolog.errors import *  # noqa: F403
    from autolog.integration import Integration, autolog, register, status  # noqa: F401
    from autolog.models import Flavor, load_model, log_model  # noqa: F401
    from autolog.tracking.client import Client  # noqa: F401
    from autolog.tracking.entities import *  # noqa: F403
    from autolog.tracking.fluent import *  # noqa: F403
