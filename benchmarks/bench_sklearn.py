"""scikit-learn autolog overhead: bare fits vs fits under autolog, in the same run.

Rows: LogisticRegression on 2,000 x 20 (bare vs autolog defaults: params,
training metrics and model; vs ``log_models=False``) and GridSearchCV with 3
candidates x 3 folds (bare vs autolog: parent run, 3 child runs, CSV, model).
Bare and autologged rounds alternate; ``autolog()`` / ``autolog(disable=True)``
run between rounds, outside the timed calls. MLflow's sklearn autolog runs the
same scenarios side by side in ``bench_peers.py`` (under its own interpreter:
MLflow is not installed in the project's environment); the issue quotes it
at +2,090 ms per fit with defaults, +289 ms without models, +4.7 s for the
grid search.
"""

from __future__ import annotations

import os
import tempfile


def _data():
    import numpy as np

    rng = np.random.RandomState(0)
    X = rng.rand(2000, 20)
    y = (X[:, 0] + X[:, 1] + rng.rand(2000) > 1.5).astype(int)
    return X, y


def run(h) -> None:
    import autolog
    from autolog.integration import autolog as enable

    with tempfile.TemporaryDirectory(prefix="bench-sklearn-") as store:
        autolog.set_tracking_uri(os.path.join(store, "mlruns"))
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV

        X, y = _data()

        def fit():
            LogisticRegression().fit(X, y)

        def grid():
            GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)

        def off():
            enable("sklearn", disable=True)
            autolog.flush()  # the writer's backlog is not the next bare round's cost

        rows = [
            ("sklearn LogisticRegression 2000x20 autolog defaults", fit, {}, "<= +10 ms", 20),
            ("sklearn LogisticRegression 2000x20 log_models=False", fit, {"log_models": False},
             "<= +3 ms", 20),
            ("sklearn GridSearchCV 3 candidates x 3 folds", grid, {}, "<= +30 ms", 3),
        ]  # fmt: skip
        for name, fn, options, goal, number in rows:
            if not h.wanted(name):
                continue
            fn()  # warm caches (imports, signatures) for both arms
            h.compare(
                name,
                fn,
                fn,
                repeat=7,
                number=number,
                goal=goal,
                base_label="bare",
                base_setup=off,
                setup=lambda options=options: enable("sklearn", silent=True, **options),
            )
