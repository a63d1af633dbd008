"""One-line autolog of a scikit-learn fit through ``autolog server``: params,
metrics and the model go over HTTP, and ``load_model("runs:/...")`` brings
the model back over HTTP."""

from __future__ import annotations

import uuid

import autolog
from autolog.tracking.stores.rest import RestStore


def test_sklearn_autolog_through_our_server(our_server, tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    autolog.set_tracking_uri(our_server.url)
    autolog.set_experiment(f"sk-{uuid.uuid4().hex[:8]}")
    autolog.autolog()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression(C=0.5, max_iter=200).fit(X, y)
    autolog.flush()
    run = autolog.last_active_run()
    assert run is not None

    stored = RestStore(our_server.url).get_run(run.info.run_id)  # read back from the server
    assert stored.data.params["C"] == "0.5"
    assert stored.data.params["max_iter"] == "200"
    assert stored.data.metrics, "no metric reached the server"
    assert any(key.startswith("training_") for key in stored.data.metrics)
    assert stored.info.status == "FINISHED"
    listed = [f.path for f in autolog.Client().list_artifacts(run.info.run_id)]
    assert "model" in listed

    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is LogisticRegression
    assert (loaded.predict(X) == model.predict(X)).all()
