"""autolog's built-in integrations, one module per framework.

Each module defines one :class:`autolog.Integration` subclass and is
registered through the ``autolog.integrations`` entry-point group, as a
third-party integration is; only the registry reads :data:`FRAMEWORK_MODULES`
to import a built-in's module later than a third party's. Importing a module
here never imports its framework: patching happens when the framework itself
is imported.
"""

#: Each built-in's framework modules: its ``modules``, then its ``covers``.
#: ``autolog()`` installs the import hooks from these and imports a built-in's
#: own module only when one of them is imported (or when ``status()``, an
#: option of its own, or a flavor asks for the class): a script that trains
#: with one framework does not import and validate the other ten. Each class
#: is checked against its row when it loads.
FRAMEWORK_MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sklearn": (("sklearn", "sklearn.metrics", "sklearn.model_selection"), ("xgboost", "lightgbm")),
    "xgboost": (("xgboost",), ()),
    "lightgbm": (("lightgbm",), ()),
    "keras": (("keras",), ()),
    "torch": (("torch",), ()),
    "lightning": (("lightning.pytorch", "pytorch_lightning"), ()),
    "transformers": (("transformers.trainer",), ()),
    "tensorflow": (("tensorflow",), ()),
    "optuna": (("optuna",), ()),
    "catboost": (("catboost",), ()),
    "statsmodels": (("statsmodels.base.model",), ()),
}
