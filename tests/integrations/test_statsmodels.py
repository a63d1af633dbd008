"""statsmodels autologging: one run per user fit, read back from the store."""

from __future__ import annotations

import os
import pickle
import threading

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import autolog
from autolog.tracking import run_state
from autolog.tracking.writer import get_writer
from tests.integrations.runs import artifact_names, only_run
from tests.models_roundtrip import assert_roundtrip_in_fresh_process


@pytest.fixture
def regression():
    rng = np.random.RandomState(0)
    X = sm.add_constant(rng.rand(60, 2))
    y = X @ [1.0, 2.0, -3.0] + 0.1 * rng.randn(60)
    return X, y


@pytest.fixture
def frame():
    rng = np.random.RandomState(1)
    df = pd.DataFrame({"tenure": rng.rand(120), "plan": list("abc") * 40})
    df["churned"] = (df.tenure + 0.5 * rng.rand(120) + (df.plan == "b") * 0.3 > 0.8).astype(int)
    return df


def test_ols_logs_settings_statistics_coefficients_summary_and_model(regression):
    autolog.autolog("statsmodels", log_summary=True)
    X, y = regression
    results = sm.OLS(y, X).fit(cov_type="HC1")
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "statsmodels"
    assert run.data.tags["model_class"] == "statsmodels.regression.linear_model.OLS"
    params = run.data.params
    assert params["model_class"] == "OLS"
    assert params["cov_type"] == "HC1"  # what the user passed
    assert params["method"] == "pinv"  # a default of fit
    assert params["endog"] == "y"
    metrics = run.data.metrics
    for name in ("aic", "bic", "llf", "rsquared", "rsquared_adj", "fvalue", "nobs", "df_resid"):
        assert metrics[name] == pytest.approx(float(getattr(results, name))), name
    assert "prsquared" not in metrics  # a statistic OLS does not have
    assert [metrics[f"coef.{n}"] for n in ("const", "x1", "x2")] == pytest.approx(results.params)
    client = autolog.Client()
    with open(client.download_artifacts(run.info.run_id, "model_summary.txt")) as file:
        summary = file.read()
    assert "OLS Regression Results" in summary  # the summary (it prints the time: not equal)
    assert results.summary().tables[1].as_text() in summary  # its coefficient table
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is type(results)
    np.testing.assert_array_equal(loaded.predict(X), results.predict(X))
    assert autolog.Client().get_run(run.info.run_id).data.tags  # the run is readable


def test_the_model_is_logged_without_the_data_and_the_users_results_keep_theirs(frame):
    autolog.autolog("statsmodels")
    results = smf.logit("churned ~ tenure + C(plan)", frame).fit(disp=0)
    bse = results.bse.copy()
    run = only_run()
    # the user's object is left as it was: data, residuals, summary
    assert results.model.exog is not None and results.model.data.frame is frame
    assert results.resid_pearson.shape == (len(frame),)
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is type(results)
    assert loaded.model.exog is None and loaded.model.endog is None
    new = frame.head(7)
    np.testing.assert_allclose(loaded.predict(new), results.predict(new), rtol=1e-12)
    np.testing.assert_allclose(loaded.bse, bse, rtol=1e-12)  # computed before: kept
    assert loaded.llf == pytest.approx(results.llf)
    size = autolog.Client().list_artifacts(run.info.run_id, "model")
    pickled = next(f for f in size if f.path.endswith("results.pickle"))
    # the arrays are left out; the formula's frame stays (loading re-reads the formula)
    assert pickled.file_size < len(pickle.dumps(results))


def test_log_model_data_keeps_a_copy_taken_when_the_fit_returned(regression):
    autolog.autolog("statsmodels", log_model_data=True)
    X, y = regression
    X, y = X.copy(), y.copy()
    results = sm.OLS(y, X).fit()
    fitted = results.fittedvalues.copy()
    X[:] = 0.0  # the user changes the data in place before the writer pickles
    y[:] = 0.0
    autolog.flush()
    loaded = autolog.load_model(f"runs:/{only_run().info.run_id}/model")
    assert results.model.exog is X  # statsmodels holds the user's array itself
    assert loaded.model.exog is not None and loaded.model.exog.any()
    np.testing.assert_allclose(loaded.fittedvalues, fitted, rtol=1e-12)
    np.testing.assert_allclose(loaded.resid, regression[1] - fitted, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rows", [60, 20000], ids=["small", "copied-during-fit"])
def test_the_statistics_are_the_fits_though_the_user_refills_its_arrays_at_once(rows):
    # a bootstrap loop refills one buffer between fits: the writer, which
    # computes the statistics after fit returned, must see the data fit saw
    rng = np.random.RandomState(0)
    X = sm.add_constant(rng.rand(rows, 2))
    y = X @ [1.0, 2.0, -3.0] + 0.1 * rng.randn(rows)
    expected = sm.OLS(y.copy(), X.copy()).fit()  # before autolog: no run
    autolog.autolog("statsmodels")
    gate = threading.Event()
    with autolog.start_run() as run:
        store = run_state.target(run.info.run_id).store
        get_writer().submit(store, lambda: gate.wait(10), run.info.run_id)  # the writer waits
        sm.OLS(y, X).fit()
        rng = np.random.RandomState(5)
        X[:, 1:] = rng.rand(len(X), 2)
        y[:] = rng.rand(len(y))
        gate.set()
    metrics = only_run().data.metrics
    for name in ("rsquared", "ssr", "llf", "aic", "fvalue", "condition_number"):
        assert metrics[name] == pytest.approx(float(getattr(expected, name)), rel=1e-12), name
    assert [metrics[f"coef.{n}"] for n in ("const", "x1", "x2")] == pytest.approx(expected.params)
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_allclose(loaded.predict(X), expected.predict(X), rtol=1e-12)
    assert loaded.rsquared == pytest.approx(expected.rsquared, rel=1e-12)  # kept in the pickle


def test_the_models_arrays_are_copied_while_fit_runs_and_what_fit_made_is_shared():
    from autolog.integrations.statsmodels import _FitCopy, _InputCopies

    rng = np.random.RandomState(0)
    X = sm.add_constant(rng.rand(20000, 3))  # 640 kB: worth the helper thread
    y = X @ [1.0, 2.0, 3.0, 4.0] + rng.randn(20000)
    model = sm.GLM(y, X)
    inputs = _InputCopies.start(model)
    results = model.fit()
    assert inputs.finished(10)
    copied = _FitCopy.of(results, frozenset(), False, True, inputs).results
    assert copied.model.exog is inputs.copies[id(X)]  # the copy made during the fit
    np.testing.assert_array_equal(copied.model.exog, X)
    assert copied.model.endog is inputs.copies[id(y)] is copied.model.data.endog
    # the IRLS weights are an array the fit made (no user's memory): shared
    assert copied.model.weights is results.model.weights
    assert inputs.may_be_users(X[:, 1:])  # a view of the user's data would be copied
    assert not inputs.may_be_users(np.ones_like(X))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_the_copies_during_fit_work_in_a_forked_child():
    from autolog.integrations.statsmodels import _FitCopy, _InputCopies

    rng = np.random.RandomState(0)
    X = sm.add_constant(rng.rand(20000, 3))
    y = X @ [1.0, 2.0, 3.0, 4.0] + rng.randn(20000)

    def copied_during_fit() -> bool:
        model = sm.OLS(y, X)
        inputs = _InputCopies.start(model)
        results = model.fit()
        if not inputs.finished(10):  # the helper thread made the copies
            return False
        copied = _FitCopy.of(results, frozenset(), False, True, inputs).results
        return copied.model.exog is inputs.copies[id(X)] and (copied.model.exog == X).all()

    assert copied_during_fit()  # the helper thread runs in this process
    pid = os.fork()
    if pid == 0:  # the child has no helper thread until it needs one
        os._exit(0 if copied_during_fit() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.filterwarnings("ignore:.*nested child run")  # two fits in one run of the user's
def test_past_a_bound_of_pending_copies_the_statistics_are_computed_at_once(
    regression, monkeypatch
):
    # a writer that is behind (a slow or failing store) must not have copies
    # of the data queue up without bound: past MAX_PENDING_BYTES, on the thread
    import gc

    from autolog.integrations import statsmodels as integration

    monkeypatch.setattr(integration, "MAX_PENDING_BYTES", 0)
    autolog.autolog("statsmodels")
    X, y = regression
    gate = threading.Event()
    with autolog.start_run() as run:
        store = run_state.target(run.info.run_id).store
        get_writer().submit(store, lambda: gate.wait(10), run.info.run_id)
        first = sm.OLS(y, X.copy()).fit()
        assert integration._PENDING[0] >= X.nbytes  # a copy the writer holds
        second = sm.OLS(y, X.copy()).fit()
        gate.set()
    assert "ssr" not in first._results._cache  # computed from the copy
    assert "ssr" in second._results._cache  # computed on the training thread
    gc.collect()
    assert integration._PENDING[0] == 0  # released once the writer was done
    runs = autolog.Client().search_runs(["0"])  # the user's, and a child for the second fit
    assert [r.data.metrics["rsquared"] for r in runs] == pytest.approx([first.rsquared] * 2)


def test_read_only_arrays_are_shared_by_the_copy_and_writeable_ones_copied(regression):
    from autolog.integrations.statsmodels import _FitCopy

    X, y = (a.copy() for a in regression)
    X.flags.writeable = False
    results = sm.OLS(y, X).fit()
    copied = _FitCopy.of(results, frozenset(), keep_data=False, pickled=True).results
    assert copied.model.exog is X and copied.model.data.exog is X  # nothing can change it
    assert copied.model.endog is not y and copied.model.endog is copied.model.data.endog
    np.testing.assert_array_equal(copied.model.endog, y)
    assert results.model.endog is y  # the user's objects are left as they were
    assert copied.model is not results.model and copied._results is not results._results


def test_a_time_series_model_keeps_its_data_for_its_forecasts():
    autolog.autolog("statsmodels")
    series = np.sin(np.arange(80) / 5.0) + 0.1 * np.random.RandomState(0).randn(80)
    results = sm.tsa.ARIMA(series, order=(1, 0, 0)).fit()
    loaded = autolog.load_model(f"runs:/{only_run().info.run_id}/model")
    np.testing.assert_allclose(loaded.forecast(3), results.forecast(3), rtol=1e-10)


def test_log_model_by_hand_keeps_the_data_as_results_save_does(regression):
    X, y = regression
    results = sm.OLS(y, X).fit()
    with autolog.start_run():
        info = autolog.log_model(results, "model")
    loaded = autolog.load_model(info.model_uri)
    np.testing.assert_allclose(loaded.model.exog, X)
    np.testing.assert_allclose(loaded.resid, results.resid)


def test_formula_logit_names_coefficients_by_the_formula(frame):
    autolog.autolog("statsmodels", log_summary=True)
    results = smf.logit("churned ~ tenure + C(plan)", frame).fit(disp=0)
    run = only_run()
    params, metrics = run.data.params, run.data.metrics
    assert params["formula"] == "churned ~ tenure + C(plan)"
    assert params["model_class"] == "Logit"
    assert params["method"] == "newton" and params["maxiter"] == "35"
    assert params["disp"] == "0"
    assert metrics["prsquared"] == pytest.approx(results.prsquared)
    assert metrics["llnull"] == pytest.approx(results.llnull)
    assert metrics["converged"] == 1.0
    assert metrics["coef.C(plan)[T.b]"] == pytest.approx(results.params["C(plan)[T.b]"])
    assert metrics["coef.Intercept"] == pytest.approx(results.params["Intercept"])
    assert "model_summary.txt" in artifact_names(run)


@pytest.mark.parametrize("log_summary", [False, True])
def test_the_summary_and_the_null_model_statistics_only_when_asked(frame, log_summary):
    autolog.autolog("statsmodels", **({"log_summary": True} if log_summary else {}))
    results = smf.logit("churned ~ tenure", frame).fit(disp=0)
    run = only_run()
    assert ("model_summary.txt" in artifact_names(run)) is log_summary
    # LL-Null fits the constant-only model: logged once the summary paid for it
    assert ("llnull" in run.data.metrics) is log_summary
    assert run.data.metrics["llf"] == pytest.approx(results.llf)  # cheap ones always


def test_glm_family_and_arima_order_are_params(frame):
    autolog.autolog("statsmodels")
    smf.glm("churned ~ tenure", frame, family=sm.families.Binomial()).fit()
    series = np.sin(np.arange(60) / 5.0) + 0.1 * np.random.RandomState(0).randn(60)
    sm.tsa.ARIMA(series, order=(1, 0, 0)).fit()
    runs = {r.data.params["model_class"]: r for r in autolog.Client().search_runs(["0"])}
    assert set(runs) == {"GLM", "ARIMA"}
    assert runs["GLM"].data.params["family"] == "Binomial"
    assert "deviance" in runs["GLM"].data.metrics
    assert runs["ARIMA"].data.params["order"] == "(1, 0, 0)"
    assert runs["ARIMA"].data.params["trend"] == "c"
    assert "aic" in runs["ARIMA"].data.metrics and "coef.ar.L1" in runs["ARIMA"].data.metrics


@pytest.mark.filterwarnings("ignore::FutureWarning")  # adfuller announces a new result type
def test_fits_statsmodels_runs_itself_open_no_run(regression):
    from statsmodels.tsa.stattools import adfuller

    autolog.autolog("statsmodels")
    adfuller(np.random.RandomState(0).rand(80), autolag="AIC")  # dozens of OLS fits inside
    assert autolog.Client().search_runs(["0"]) == []
    X, y = regression
    sm.OLS(y, X).fit()  # the user's own fit still logs
    assert only_run().data.params["model_class"] == "OLS"


def test_logs_into_the_users_run_without_a_model_when_log_models_is_off(regression):
    autolog.autolog("statsmodels", log_models=False)
    X, y = regression
    with autolog.start_run() as run:
        sm.OLS(y, X).fit()
    logged = only_run()
    assert logged.info.run_id == run.info.run_id
    assert "rsquared" in logged.data.metrics
    assert artifact_names(logged) - {"provenance"} == set()  # no model, no summary


def test_a_fit_that_raises_keeps_its_settings_in_its_failed_run(regression):
    autolog.autolog("statsmodels")
    X, y = regression
    with pytest.raises(ValueError):
        sm.OLS(y, X).fit(cov_type="no such covariance")
    run = only_run()
    assert run.info.status == "FAILED"
    assert run.data.params["cov_type"] == "no such covariance"
    assert run.data.tags["model_class"] == "statsmodels.regression.linear_model.OLS"
    assert run.data.metrics.keys() <= {
        "autolog.overhead_ms",
        "autolog.training_ms",
        "autolog.overhead_pct",
    }


def test_the_settings_are_the_models_when_fit_returned(frame, monkeypatch):
    """They are read on the writer thread, from the copy taken at the fit's return."""
    autolog.autolog("statsmodels")
    model = smf.glm("churned ~ tenure", frame, family=sm.families.Binomial())
    writer = get_writer()
    writer.flush()
    with monkeypatch.context() as patch:
        patch.setattr(writer, "_drain_due", lambda: False)  # nothing written meanwhile
        patch.setattr(writer, "wake", lambda: None)
        model.fit()
        assert writer.pending  # the record waits in the queue
        model.family = sm.families.Poisson()  # the user changes it before it is written
    autolog.flush()
    assert only_run().data.params["family"] == "Binomial"


def test_disabled_logs_nothing(regression):
    autolog.autolog("statsmodels")
    autolog.autolog("statsmodels", disable=True)
    X, y = regression
    sm.OLS(y, X).fit()
    assert autolog.Client().search_runs(["0"]) == []


@pytest.mark.slow
def test_results_round_trip_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        """
        import numpy as np
        import statsmodels.api as sm
        X = sm.add_constant(np.random.RandomState(0).rand(40, 2))
        model = sm.OLS(X @ [1.0, 2.0, 3.0], X).fit()
        """,
        "model.predict(X)",
        expected_flavor="statsmodels",
        rtol=1e-12,
    )
    assert result.metadata["framework"]["distribution"] == "statsmodels"
