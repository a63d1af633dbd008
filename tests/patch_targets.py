"""A throwaway framework module and integration for the patch-manager tests.

Each test writes the module under a fresh name (the ``make_module`` fixture),
so that "patch before import" really happens before the first import.
"""

import autolog

FRAMEWORK_SOURCE = """
class Model:
    def fit(self, x, epochs=1, callbacks=None):
        for callback in callbacks or ():
            callback(self, x)
        if x == "boom":
            raise ValueError("the user's own error")
        if x == "interrupt":
            raise KeyboardInterrupt
        return ("fitted", x, epochs)

    def fit_twice(self, x):
        self.fit(x)
        return self.fit(x)

    @classmethod
    def create(cls, x):
        return ("created", cls.__name__, x)

    @staticmethod
    def helper(x):
        return ("helper", x)

    @property
    def size(self):
        return 42


class Child(Model):
    pass


class Override(Model):
    def fit(self, x, epochs=1, callbacks=None):
        self.fit_called_super = True
        return super().fit(x, epochs=epochs, callbacks=callbacks)


def train(x):
    return ("trained", x)
"""


def fake_integration(module_name: str, patch, name: str = "fake", **attrs):
    """An Integration subclass for ``module_name`` whose patch() is ``patch``."""
    body = {"name": name, "modules": (module_name,), "patch": patch, **attrs}
    return type("FakeIntegration", (autolog.Integration,), body)


def recorder(events: list):
    def handler(call):
        events.append(("before", call.run_id, tuple(call.args), call.created_run))
        result = yield
        events.append(("after", result))

    return handler


def wraps(target: str, handler, **options):
    """A patch() that wraps ``module.<target>`` with ``handler``."""

    def patch(self, patcher, module):
        patcher.wrap(module, target, handler, **options)

    return patch
