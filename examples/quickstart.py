"""The README's quickstart: autolog a scikit-learn fit into ./mlruns.

.venv/bin/python examples/quickstart.py
"""

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import autolog

X, y = make_classification(n_samples=500, n_features=8, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

autolog.autolog()  # every installed framework, from now on
autolog.set_experiment("Customer_Churn_Prediction")

with autolog.start_run(run_name="random_forest_v1") as run:
    model = RandomForestClassifier(n_estimators=20, max_depth=5).fit(X_train, y_train)
    autolog.log_metric("holdout_accuracy", model.score(X_test, y_test))
    autolog.set_tag("model_type", "Random Forest")

logged = autolog.get_run(run.info.run_id)
print(logged.data.params["n_estimators"], logged.data.metrics["training_accuracy_score"])

print(f"run {run.info.run_id} in {autolog.get_tracking_uri()}")
print("metrics:", logged.data.metrics)
print("artifacts:", [f.path for f in autolog.Client().list_artifacts(run.info.run_id)])
print("see it with: .venv/bin/autolog runs list --experiment Customer_Churn_Prediction")
