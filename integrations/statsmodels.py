"""statsmodels autologging: each ``Model.fit`` gives one run with the fitted results.

::

    import autolog, statsmodels.api as sm
    autolog.autolog("statsmodels")
    results = sm.OLS(y, sm.add_constant(X)).fit()
    # or: smf.logit("churned ~ tenure + C(plan)", data).fit(), sm.tsa.ARIMA(...).fit(), ...

Every statsmodels model (a subclass of ``statsmodels.base.model.Model``) is
covered. Each run holds:

- **params**: the fit's settings (``method``, ``cov_type``, ``maxiter``, ...,
  defaults included; data and callables are left out), the model's own
  settings (an ARIMA's ``order``, a GLM's ``family`` by class name), its
  ``formula`` when built from one, ``endog`` (the dependent variable's name)
  and ``model_class`` (also a tag);
- **metrics**: the scalar statistics of the results' summary that the model
  has (``aic``, ``bic``, ``hqic``, ``llf``, ``rsquared``, ``rsquared_adj``,
  ``fvalue``, ``f_pvalue``, ``deviance``, ``scale``, ``nobs``, ``df_model``,
  ``df_resid``, ``condition_number``, ``converged``, ...; and ``llnull``,
  ``llr``, ``llr_pvalue``, ``prsquared`` once the summary computed them) and
  each fitted coefficient as ``coef.<name>`` (``coef.const``,
  ``coef.C(plan)[T.pro]``). They are computed on the writer thread, from a
  copy of the results taken when the fit returns, whose data arrays were
  copied in memory by a helper thread while the fit ran (it only reads
  them): the statistics take several passes over the data (1 ms for an OLS
  on 20,000 rows), the copy one, off the training thread, and the user may
  change the arrays as soon as ``fit`` returns (a time-series model's are
  computed when its fit returns, on the training thread);
- with ``autolog(log_summary=True)``, the artifact ``model_summary.txt``:
  ``results.summary()`` as text. It is off by default because printing a
  summary costs more than many statsmodels fits (its diagnostic tests and
  formatting: a third of an OLS fit on 20,000 x 20 rows; a discrete model's
  or a GLM's summary first fits the constant-only model for its LL-Null);
  every scalar statistic in it is logged as a metric anyway;
- the model (``log_models``): the results object, which
  :func:`autolog.load_model` gives back (pickled as statsmodels' own
  ``results.save`` does, on the writer thread from a copy taken when the fit
  returned; load only models you trust). By default without the training
  data arrays (``results.save(remove_data=True)``'s semantics; a formula
  model keeps its data frame, which loading it needs): it predicts on new
  data and keeps every statistic computed before it was logged (those above,
  the coefficients' standard errors), but ``fittedvalues``, ``resid`` and a
  ``summary()`` asked for later need the data. With
  ``autolog(log_model_data=True)`` the data is kept (copied in memory when
  the fit returns). Time-series models (``statsmodels.tsa``) always keep
  theirs: their forecasts need it.

Fits that statsmodels runs itself (the regressions inside ``adfuller``, a
model's fit inside another's) are not the user's: they open no run.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from pathlib import Path

from autolog import plugin
from autolog.plugin import Flavor, ModelSnapshot

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    import types
    from collections.abc import Generator
    from typing import Any

    from autolog.plugin import Call

__all__ = ["StatsmodelsFlavor", "StatsmodelsIntegration"]

#: the scalar statistics of a results object (those it has are logged)
STATISTICS = (
    "aic",
    "aicc",
    "bic",
    "hqic",
    "llf",
    "llnull",
    "llr",
    "llr_pvalue",
    "rsquared",
    "rsquared_adj",
    "prsquared",
    "pseudo_rsquared",
    "fvalue",
    "f_pvalue",
    "deviance",
    "null_deviance",
    "pearson_chi2",
    "scale",
    "ssr",
    "ess",
    "centered_tss",
    "mse_model",
    "mse_resid",
    "mse_total",
    "nobs",
    "df_model",
    "df_resid",
    "condition_number",
    "sse",
)
#: statistics that fit the constant-only model: logged only once computed
NULL_MODEL_STATISTICS = frozenset({"llnull", "llr", "llr_pvalue", "prsquared", "pseudo_rsquared"})
COEFFICIENT_PREFIX = "coef."
# fit arguments that are data, starting points or code, not settings
_NOT_SETTINGS = frozenset({"start_params", "callback", "cov_kwds", "kwargs", "kwds"})
_MAX_SEQUENCE = 20  # a longer tuple of settings is data (weights, a grid)
_MODEL_FILE = "results.pickle"


class StatsmodelsFlavor(Flavor):
    """statsmodels results objects (``RegressionResultsWrapper``, ``ARIMAResultsWrapper``,
    ...), pickled with their model and data, as ``results.save()`` does.

    Option ``remove_data=True``: without the data arrays, as
    ``results.save(remove_data=True)``, but the user's results object is left
    as it is (statsmodels' ``remove_data()`` empties it in place).

    Either way the pickle is made on the writer thread, from a copy taken when
    the snapshot is: the results hold the user's own arrays (``np.asarray``
    does not copy) and fill their caches when read, so pickling the live
    object later could race with the user changing either."""

    name = "statsmodels"
    distribution = "statsmodels"
    module = "statsmodels"

    def handles(self, model: Any) -> bool:
        from statsmodels.base.model import Results
        from statsmodels.base.wrapper import ResultsWrapper

        return isinstance(model, (ResultsWrapper, Results))

    def snapshot(self, model: Any, remove_data: bool = False) -> ModelSnapshot:
        copied = None
        if remove_data and not _is_time_series(model):
            copied = _copy_without_data(model)
        removed = copied is not None
        if copied is None:
            import copy

            try:  # the data is copied (memory, not a pickle)
                copied = copy.deepcopy(model)
            except Exception:  # something deepcopy cannot copy: pickled now, as before
                return plugin.pickle_snapshot(model, _MODEL_FILE)
        metadata = {
            "pickled_file": _MODEL_FILE,
            "serializer": "cloudpickle",
            "class": plugin.class_path(model),
            "data_removed": removed,
        }
        return ModelSnapshot({}, metadata, {_MODEL_FILE: lambda: _dumps(copied)})

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        return plugin.load_pickle(path, metadata)


def _dumps(model: Any) -> bytes:
    import cloudpickle

    try:
        return cloudpickle.dumps(model)
    except Exception as exc:
        raise plugin.ModelError(f"cannot pickle {plugin.class_path(model)}: {exc}") from exc


def _is_time_series(model: Any) -> bool:
    """statsmodels.tsa results: their forecasts need the data (and their state
    space objects, which remove_data also drops)."""
    inner = getattr(model, "_results", model)
    return type(getattr(inner, "model", None)).__module__.startswith("statsmodels.tsa.")


def _copy(obj: Any) -> Any:
    """A new object of ``obj``'s class sharing its attributes (no ``__getstate__``:
    statsmodels' ModelData rebuilds a formula's design on ``__setstate__``)."""
    new = object.__new__(type(obj))
    new.__dict__.update(object.__getattribute__(obj, "__dict__"))
    return new


def _is_cached_data(cls: type, name: str) -> bool:
    """Whether ``cls.name`` is one of statsmodels' ``cached_data`` properties
    (nobs-length arrays, which ``remove_data()`` drops from the cache)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return type(klass.__dict__[name]).__name__ == "cached_data"
    return False


def _copy_without_data(model: Any) -> Any:
    """What ``results.remove_data()`` would leave, on copies: the results, their
    model and its data object are copied (their attributes and caches, not the
    arrays they hold), and the data arrays that ``remove_data()`` finds are
    None in the copies; the user's objects are not changed. None when the
    results are not shaped so (pickled with their data then)."""
    inner = getattr(model, "_results", model)
    try:
        results = _copy(inner)
        fitted = _copy(inner.model)
        results.model = fitted
        data = getattr(fitted, "data", None)
        if data is not None and hasattr(data, "__dict__"):
            data = fitted.data = _copy(data)
            if isinstance(data.__dict__.get("_cache"), dict):
                data._cache = dict(data._cache)
        copies = {"": results, "model.": fitted, "model.data.": data}
        paths = [
            *getattr(inner, "_data_attr", ()),
            *(f"model.{name}" for name in getattr(inner.model, "_data_attr", ())),
            *(f"model.{name}" for name in getattr(inner, "_data_attr_model", ())),
        ]
        for path in paths:
            prefix, _, name = path.rpartition(".")
            owner = copies.get(f"{prefix}." if prefix else "")
            # an attribute of an object we did not copy stays (never the user's set to None)
            if owner is not None and name in owner.__dict__:
                owner.__dict__[name] = None
        cache = inner.__dict__.get("_cache")
        if isinstance(cache, dict):
            results._cache = dict(cache)
            data_in_cache = set(getattr(inner, "_data_in_cache", ()))
            data_in_cache.update(name for name in cache if _is_cached_data(type(inner), name))
            for name in data_in_cache & set(cache):
                results._cache[name] = None
    except Exception:
        return None
    if inner is model:
        return results
    wrapper = _copy(model)
    wrapper.__dict__["_results"] = results
    return wrapper


#: arrays a fit makes (named as statsmodels names them) that are as large as the
#: data: shared by the copy, not copied (see _FitCopy)
_FIT_PRODUCTS = frozenset({"pinv_wexog", "_tmp_like_exog", "mu"})


def _copy_with_data(
    model: Any, keep_data: bool, pickled: bool, inputs: _InputCopies | None = None
) -> tuple[Any, int]:
    """Copies of the results, their model and its data object (``_copy``), in
    which every writeable array is a copy of its own except ``_FIT_PRODUCTS``
    (an array held under two names is copied once). Data frames and series get
    a shallow copy (their names as they are now), a deep one where the pickle
    keeps them: all with ``keep_data``, a formula's ``data.frame`` when
    ``pickled`` (loading needs it). ``inputs``: the model's arrays as copied
    while the fit ran (:class:`_InputCopies`): a large array that fit made
    itself is shared unless it may overlap one of them. Returns the copy and
    the bytes of data it copied; raises when the results are not shaped so."""
    import numpy as np

    inner = getattr(model, "_results", model)
    results = _copy(inner)
    fitted = results.model = _copy(inner.model)
    data = fitted.data = _copy(fitted.data)
    copies: dict[tuple[int, bool], Any] = {}
    frames = _pandas_types()
    size = [0]
    made = inputs.taken() if inputs is not None else {}

    def copied(value: Any, deep: bool = True) -> Any:
        found = copies.get((id(value), deep))
        if found is None:
            found = made.get(id(value)) if deep else None
            if found is None:
                found = value.copy() if deep else value.copy(deep=False)
            copies[id(value), deep] = found
            if deep:
                size[0] += _nbytes(found)
        return found

    for obj in (results, fitted, data):
        attributes = obj.__dict__
        for name, value in attributes.items():
            if isinstance(value, np.ndarray):  # a subclass too (np.matrix)
                if not value.flags.writeable or name in _FIT_PRODUCTS:
                    continue
                if inputs is None or inputs.may_be_users(value):
                    attributes[name] = copied(value)
            elif frames and isinstance(value, frames):
                # its names (the coefficients') are read from it: a shallow copy
                # keeps them as they are now; its values only where pickled
                deep = keep_data or (pickled and obj is data and name == "frame")
                attributes[name] = copied(value, deep)
        cache = attributes.get("_cache")
        if isinstance(cache, dict):
            attributes["_cache"] = dict(cache)  # filled by the writer, not the user's
    if inner is model:
        return results, size[0]
    wrapper = _copy(model)
    wrapper.__dict__["_results"] = results
    return wrapper, size[0]


def _pandas_types() -> tuple[type, ...]:
    """pandas' Series and DataFrame, once pandas is imported (no model holds one
    before): an isinstance check, not a failed attribute lookup per attribute."""
    pd = sys.modules.get("pandas")
    return (pd.Series, pd.DataFrame) if pd is not None else ()


class _InputCopies:
    """Copies of a model's arrays (``model.__dict__`` and ``model.data``'s), made
    on a helper thread while its fit runs and taken when it returns.

    The fit only reads them, and numpy copies without holding the GIL, so the
    copy (0.23 ms for 20,000 x 21 float64, and more after a fit has flushed
    the caches) costs the training thread nothing unless the fit is shorter
    than it: then ``taken`` waits for the rest, or leaves the copies to the
    caller when the helper has not started. A user thread that writes the arrays while fit
    reads them changes the fit too; one that writes them after fit returns
    cannot reach these copies. Arrays under ``_SMALL_ARRAY`` bytes are left
    to the copy after the fit (a hand-over costs more than copying them).
    """

    __slots__ = ("copies", "done", "pid", "sources", "turn")

    @classmethod
    def start(cls, model: Any) -> _InputCopies | None:
        import numpy as np

        if type(model).__module__.startswith("statsmodels.tsa.") or (
            _PENDING[0] > MAX_PENDING_BYTES
        ):
            return None
        sources: dict[int, Any] = {}
        holders = [model.__dict__, getattr(getattr(model, "data", None), "__dict__", {})]
        for attributes in holders:
            for name, value in attributes.items():
                writeable = isinstance(value, np.ndarray) and value.flags.writeable
                if writeable and name not in _FIT_PRODUCTS:
                    sources[id(value)] = value
        inputs = cls()
        inputs.sources, inputs.copies, inputs.pid = sources, {}, os.getpid()
        # Whoever pops the turn makes the copies: the helper, or the training
        # thread when the helper has not begun (dict.pop is atomic). ``done``
        # is held until the copies are made. (A lock each, not an Event: a
        # fit of milliseconds pays for what it makes.)
        inputs.done = threading.Lock()
        if any(a.nbytes >= _SMALL_ARRAY for a in sources.values()):
            inputs.turn = {0: True}
            inputs.done.acquire()
            _COPIER.submit(inputs)
        else:
            inputs.turn = {}  # nothing worth a hand-over: copied after the fit
        return inputs

    def run(self) -> None:  # on the helper thread
        if not self.turn.pop(0, False):  # the training thread took it
            return
        try:
            for key, array in self.sources.items():
                if array.nbytes >= _SMALL_ARRAY:
                    self.copies[key] = array.copy()
        finally:
            self.done.release()

    def may_be_users(self, array: Any) -> bool:
        """Whether ``array`` is one the model held before fit, or may share
        memory with one (a view of the user's data): else fit made it."""
        if id(array) in self.sources or array.nbytes < _SMALL_ARRAY:
            return True
        import numpy as np

        return any(np.may_share_memory(array, source) for source in self.sources.values())

    def taken(self) -> dict[int, Any]:
        """The copies made during the fit, by their source's id, once the helper
        is done; none when it had not begun (it never will: the caller copies)
        or in a forked child, where no helper runs."""
        if self.pid != os.getpid():
            return {}
        if self.turn.pop(0, False):  # the helper is behind: the caller copies
            self.done.release()
        else:  # the helper has it (or had): wait until it is done
            self.finished()
        return self.copies

    def finished(self, timeout: float = -1) -> bool:
        """Wait until the copies are made (or left to the training thread)."""
        if not self.done.acquire(timeout=timeout):
            return False
        self.done.release()
        return True


#: arrays smaller than this are copied after the fit, on the training thread
_SMALL_ARRAY = 64 * 1024


class _Copier:
    """The helper thread that runs :meth:`_InputCopies.run`: one daemon thread,
    started on first use (and again in a forked child, which has none)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.jobs: Any = None
        self.lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # a lock held across a fork stays held
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.lock, self.pid, self.jobs = threading.Lock(), None, None

    def submit(self, inputs: _InputCopies) -> None:
        if self.pid != os.getpid():
            import queue

            with self.lock:
                if self.pid != os.getpid():
                    jobs = queue.SimpleQueue()
                    threading.Thread(
                        target=self._work,
                        args=(jobs,),
                        name="autolog-statsmodels-copy",
                        daemon=True,
                    ).start()
                    self.jobs, self.pid = jobs, os.getpid()
        self.jobs.put(inputs)

    @staticmethod
    def _work(jobs: Any) -> None:
        while True:
            job = jobs.get()
            try:
                job.run()
            except Exception:  # a copy that failed is made again after the fit
                pass
            del job  # the arrays are the user's: hold them no longer


_COPIER = _Copier()


def _nbytes(value: Any) -> int:
    nbytes = getattr(value, "nbytes", None)  # an array, a series
    if nbytes is None:  # a data frame
        nbytes = value.memory_usage(index=False).sum()
    return int(nbytes)


#: bytes of data copies the writer thread has not finished with, and the most
#: there may be: past it (the store is slow or down, so the writer is behind)
#: a fit's statistics are computed on the training thread, as they were
#: before, rather than copies of its data queueing up in memory
_PENDING = [0]
_PENDING_LOCK = threading.Lock()
MAX_PENDING_BYTES = 256 * 2**20


def _hold(nbytes: int) -> list[int]:
    with _PENDING_LOCK:
        _PENDING[0] += nbytes
    return [nbytes]


def _release(held: list[int]) -> None:
    with _PENDING_LOCK:
        _PENDING[0] -= held[0]
        held[0] = 0


class StatsmodelsIntegration(plugin.Integration):
    """Autologging for statsmodels (see the module documentation)."""

    name = "statsmodels"
    modules = ("statsmodels.base.model",)
    distribution = "statsmodels"
    supported_versions = ">=0.13,<0.17"
    options = {"log_summary": False, "log_model_data": False}
    flavors = (StatsmodelsFlavor,)

    def patch(self, patcher: plugin.Patcher, module: types.ModuleType) -> None:
        # Subclasses override fit and call their parent's (Logit.fit ->
        # LikelihoodModel.fit): the nested calls pass through.
        patcher.wrap_subclasses(
            module.Model, "fit", self.on_fit, enabled=plugin.called_from_outside("statsmodels")
        )

    def on_fit(self, call: Call) -> Generator[None, Any, None]:
        model = call.instance
        run_id = call.run_id
        # the model's arrays (the user's data) are copied while fit runs: the
        # fit only reads them, and numpy copies without holding the GIL
        inputs = _InputCopies.start(model)
        try:
            results = yield
        except GeneratorExit:  # the fit raised: its run keeps what it was asked to do
            self._log_settings(model, call)
            raise
        config = call.config
        if config.log_summary:
            summary = _summary_text(results)
            if summary is not None:
                plugin.log_model_summary(summary, run_id)
        # Which statistics of the constant-only model the user's results hold
        # (the summary's): asked now, their values read from the copy.
        computed = frozenset(_computed(results))
        keep_data = config.log_models and config.log_model_data
        fit = _FitCopy.of(results, computed, keep_data, config.log_models, inputs)
        if fit is None:  # a time-series model, or results not shaped as we expect
            self._log_settings(model, call)
            # keys from the data's column names: one the tracking API refuses is left out
            plugin.log_epoch_metrics(_statistics(results, computed), 0, run_id)
            if config.log_models:
                plugin.log_model(results, "model", run_id=run_id, remove_data=not keep_data)
            return
        # A fit of 10 ms would pay a tenth of its time for its record here (the
        # statistics cost passes over the data, 1 ms for an OLS on 20,000
        # rows): the settings (read from the copy of the model, as it was
        # when fit returned), the tag and the statistics go to the writer
        # thread in one piece.
        model_class = plugin.class_path(model)

        def record() -> dict[str, Any]:
            params = _model_params(fit.results.model, call)  # before statistics() strip it
            return {
                "params": params,
                "tags": {"model_class": model_class},
                "metrics": fit.statistics(),
            }

        plugin.log_later(record, run_id, self.name)
        if config.log_models:
            snapshot = fit.snapshot(remove_data=not keep_data)
            plugin.log_model(
                results, "model", run_id=run_id, flavor=StatsmodelsFlavor, snapshot=snapshot
            )

    @staticmethod
    def _log_settings(model: Any, call: Call) -> None:
        """The model's settings as params and its class as a tag, logged now."""
        plugin.set_tags({"model_class": plugin.class_path(model)}, run_id=call.run_id)
        plugin.log_params(_model_params(model, call), call.run_id)


class _FitCopy:
    """A fit's results as they were when the fit returned, for the writer thread:
    its statistics (:meth:`statistics`) and its pickle (:meth:`snapshot`), both
    from one copy (so the pickled results keep the statistics computed for the
    metrics, as the user's would).

    What is copied: the results, their model and its data object (their
    attributes and caches; see ``_copy``), and the writeable arrays they hold
    that may be the user's: those the model held before fit (copied while
    it ran, :class:`_InputCopies`), any that may overlap one of them, and the
    small ones. The user's arrays must be copied: ``sm.OLS(y, X)`` keeps
    ``X`` itself (``np.asarray`` does not copy), and a loop that refills one
    buffer between fits (a bootstrap) would otherwise have the writer
    compute the next fit's data into this fit's statistics. A read-only
    array is shared (nothing can change it through it); so are the large
    arrays the fit made (``_FIT_PRODUCTS`` by name, others by not overlapping
    the inputs), which statsmodels never changes in place (a later fit of
    the same model assigns new ones) and which are no user's memory. Data
    frames and series (a formula's ``data.frame``, the ``orig_exog`` of a
    frame passed in) get a shallow copy, which keeps their
    names (the coefficients') as they are now: the statistics read the
    arrays; their values are copied only where the pickle keeps them.

    The copied data is freed once the statistics are computed (kept for the
    pickle with ``log_model_data=True``); while more than
    ``MAX_PENDING_BYTES`` of it waits for the writer (a slow or failing
    store), a fit's statistics are computed on the training thread instead.
    Time-series models are not copied so (None): their state-space objects
    hold the data in compiled structures that a shallow copy would share.
    """

    __slots__ = ("_statistics", "computed", "held", "keep_data", "results")

    @classmethod
    def of(
        cls,
        results: Any,
        computed: frozenset[str],
        keep_data: bool,
        pickled: bool,
        inputs: _InputCopies | None = None,
    ) -> _FitCopy | None:
        if _is_time_series(results) or _PENDING[0] > MAX_PENDING_BYTES:
            return None
        try:
            copied, nbytes = _copy_with_data(results, keep_data, pickled, inputs)
        except Exception:
            return None
        fit = cls()
        fit.results, fit.computed, fit._statistics = copied, computed, None
        fit.keep_data = keep_data and pickled
        # counted until the writer is done with the data (or drops the items)
        fit.held = _hold(nbytes)
        return fit

    def __del__(self) -> None:  # the writer dropped its items without using them
        _release(self.held)

    def statistics(self) -> dict[str, float]:
        """The statistics (once: the metrics and the pickle both ask)."""
        if self._statistics is None:
            self._statistics = _statistics(self.results, self.computed)
            if not self.keep_data:  # the data is needed no more: freed now
                stripped = _copy_without_data(self.results)
                if stripped is not None:
                    self.results = stripped
                    _release(self.held)
        return self._statistics

    def snapshot(self, remove_data: bool) -> ModelSnapshot:
        # _copy_with_data walked the same objects that _copy_without_data
        # strips: what took the first copy takes the second (if it ever did
        # not, the pickle would keep the data: larger, never wrong)
        removed = remove_data
        metadata = {
            "pickled_file": _MODEL_FILE,
            "serializer": "cloudpickle",
            "class": plugin.class_path(self.results),
            "data_removed": removed,
        }

        def pickled() -> bytes:
            self.statistics()  # cached in the copy: the loaded results have them
            model = _copy_without_data(self.results) if removed else None
            try:
                return _dumps(self.results if model is None else model)
            finally:
                _release(self.held)

        return ModelSnapshot({}, metadata, {_MODEL_FILE: pickled})


def _model_params(model: Any, call: Call) -> dict[str, Any]:
    params: dict[str, Any] = {"model_class": type(model).__name__}
    formula = getattr(model, "formula", None)
    if isinstance(formula, str):
        params["formula"] = formula
    endog = getattr(model, "endog_names", None)
    if isinstance(endog, str):
        params["endog"] = endog
    try:
        init = model._get_init_kwds()  # the model's settings, as statsmodels clones it
    except Exception:
        init = {}
    for source in (init, call.arguments()):
        for key, value in source.items():
            if key in _NOT_SETTINGS or key == "self":
                continue
            setting = _setting(value)
            if setting is not None:
                params.setdefault(key, setting)
    return params


def _setting(value: Any) -> Any:
    """A loggable form of a setting, or None: scalars and short tuples of them as
    they are, a settings object (a GLM family) by class name; data is left out."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) <= _MAX_SEQUENCE and all(
            isinstance(v, (bool, int, float, str)) for v in value
        ):
            return tuple(value)
        return None
    if hasattr(value, "shape") or hasattr(value, "__len__") or callable(value):
        return None  # arrays, frames, mappings, functions
    if type(value).__module__.startswith("statsmodels."):
        return type(value).__name__  # Binomial(), a link: named
    return None


def _statistics(results: Any, computed: Any) -> dict[str, float]:
    """Every scalar statistic the results have (the null model's only if in
    ``computed``: see NULL_MODEL_STATISTICS), and the coefficients."""
    metrics: dict[str, float] = {}
    # Properties compute lazily and some raise or warn for models that lack
    # them (no likelihood, a singular design): each is asked on its own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inner = getattr(results, "_results", results)
        for name in STATISTICS:
            if name in NULL_MODEL_STATISTICS and name not in computed:
                continue  # an extra fit we do not pay for
            if name not in inner.__dict__ and not hasattr(type(inner), name):
                continue  # one this results class has not (asking raises: slower)
            value = _scalar(results, name)
            if value is not None:
                metrics[name] = value
        retvals = getattr(results, "mle_retvals", None)
        if isinstance(retvals, dict) and "converged" in retvals:
            metrics["converged"] = float(bool(retvals["converged"]))
        metrics.update(_coefficients(results))
    return metrics


def _computed(results: Any) -> Any:
    """The statistics statsmodels already computed (its cached properties)."""
    inner = getattr(results, "_results", results)  # a results wrapper's results
    cache = getattr(inner, "_cache", None)
    return cache if isinstance(cache, dict) else {}


def _scalar(results: Any, name: str) -> float | None:
    try:
        value = getattr(results, name)
    except Exception:
        return None
    if callable(value):
        return None
    number = plugin.numeric(value)
    return None if number is None or math.isnan(number) else number


def _coefficients(results: Any) -> dict[str, float]:
    try:
        values = results.params
    except Exception:
        return {}
    try:
        values_list = [float(v) for v in values]
    except (TypeError, ValueError):
        return {}
    names = _coefficient_names(results, values, len(values_list))
    values = values_list
    return {f"{COEFFICIENT_PREFIX}{name}": value for name, value in zip(names, values)}


def _coefficient_names(results: Any, values: Any, count: int) -> list[str]:
    """The names of the coefficients: the Series' index when the data had names,
    else the model's (time-series models name theirs: ``ar.L1``, ``sigma2``)."""
    index = getattr(values, "index", None)
    candidates = [index] if index is not None else []
    model = getattr(results, "model", None)
    for attribute in ("param_names", "exog_names"):
        try:
            candidates.append(getattr(model, attribute))
        except Exception:
            continue
    for names in candidates:
        if names is not None and not isinstance(names, str) and len(names) == count:
            return [str(name) for name in names]
    return [f"x{i}" for i in range(count)]


def _summary_text(results: Any) -> str | None:
    summary = getattr(results, "summary", None)
    if summary is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            printed = summary()
    except Exception:  # a results class whose summary needs more than it has
        return None
    as_text = getattr(printed, "as_text", None)
    return as_text() if as_text is not None else str(printed)
