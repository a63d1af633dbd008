"""Classes that subclass a framework's class, defined on first use and picklable.

An injected callback must subclass the framework's callback class (Keras,
Lightning and XGBoost check ``isinstance``), but an integration module may not
import its framework (rule 3). :class:`FrameworkClasses` defines such a class
when it is first needed and makes it an attribute of the integration's
module, under its own name: pickle stores it by reference, and a process that
unpickles it (a distributed worker, ``ddp_spawn``) finds it through the
module's ``__getattr__``, which builds it there.
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["FrameworkClasses"]


class FrameworkClasses:
    """The lazily defined classes of one integration module::

        _classes = FrameworkClasses(__name__)

        def _build_callback() -> type:
            import keras

            class AutologCallback(keras.callbacks.Callback): ...

            return AutologCallback

        _classes.define("AutologCallback", _build_callback)
        __getattr__ = _classes.module_getattr   # a module-level __getattr__ (PEP 562)

        callback = _classes.get("AutologCallback")(run_id)

    Do not bind the class name at module level yourself: the name must stay
    unbound until the class exists, so that ``__getattr__`` builds it.
    """

    def __init__(self, module_name: str):
        self.module_name = module_name
        self._builders: dict[str, Callable[[], type]] = {}
        self._classes: dict[str, type] = {}
        self._lock = threading.Lock()

    def define(self, name: str, build: Callable[[], type]) -> None:
        """``build()`` returns the class called ``name``, importing the framework."""
        self._builders[name] = build

    def get(self, name: str) -> type:
        """The class ``name``, built on the first call."""
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        with self._lock:
            cls = self._classes.get(name)
            if cls is None:
                cls = self._builders[name]()
                cls.__module__, cls.__qualname__, cls.__name__ = self.module_name, name, name
                module = sys.modules.get(self.module_name)
                if module is not None:
                    setattr(module, name, cls)  # pickle finds it by reference
                self._classes[name] = cls
        return cls

    def module_getattr(self, name: str) -> Any:
        """For the module's ``__getattr__``: builds a defined class, else AttributeError."""
        if name in self._builders:
            return self.get(name)
        raise AttributeError(f"module {self.module_name!r} has no attribute {name!r}")
