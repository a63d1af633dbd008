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
  ``coef.C(plan)[T.pro]``);
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
        plugin.set_tags({"model_class": plugin.class_path(model)}, run_id=run_id)
        plugin.log_params(_model_params(model, call), run_id)
        results = yield
        if call.config.log_summary:
            summary = _summary_text(results)
            if summary is not None:
                plugin.log_model_summary(summary, run_id)
        # keys from the data's column names: one the tracking API refuses is left out
        plugin.log_epoch_metrics(_statistics(results), 0, run_id)
        if call.config.log_models:
            remove_data = not call.config.log_model_data
            plugin.log_model(results, "model", run_id=run_id, remove_data=remove_data)


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


def _statistics(results: Any) -> dict[str, float]:
    """Every scalar statistic the results have, and the coefficients."""
    metrics: dict[str, float] = {}
    # Properties compute lazily and some raise or warn for models that lack
    # them (no likelihood, a singular design): each is asked on its own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        computed = _computed(results)
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
