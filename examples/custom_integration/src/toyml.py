"""toyml: a toy training framework (stands in for your framework).

    trainer = toyml.Trainer(learning_rate=0.1, epochs=3)
    model = trainer.train([1.0, 2.0, 3.0], callbacks=[my_callback])

``callbacks`` get ``on_epoch_end(epoch, logs)`` with ``logs = {"loss": ...}``.
"""

from __future__ import annotations

__version__ = "0.1.0"


class Model:
    def __init__(self, weight: float):
        self.weight = weight

    def predict(self, xs: list[float]) -> list[float]:
        return [self.weight * x for x in xs]


class Trainer:
    def __init__(self, learning_rate: float = 0.1, epochs: int = 3):
        self.learning_rate = learning_rate
        self.epochs = epochs

    def train(self, data: list[float], callbacks: list | None = None) -> Model:
        """Fit y = 2x by gradient descent on the squared error; returns the model."""
        weight = 0.0
        for epoch in range(self.epochs):
            grad = sum(2 * (weight * x - 2 * x) * x for x in data) / len(data)
            weight -= self.learning_rate * grad
            loss = sum((weight * x - 2 * x) ** 2 for x in data) / len(data)
            for callback in callbacks or ():
                callback.on_epoch_end(epoch, {"loss": loss})
        return Model(weight)
