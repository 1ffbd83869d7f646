"""Train a 2-64-64-3 MLP on the three-arm spiral, and check it on spiral points it never saw.

A mini-batch training loop: `loop.fit` runs forward, the cost J (cross-entropy, the mean of the
per-example losses L), backward for dW and db, and an Adam step for each batch, exactly as the loop a
PyTorch user writes by hand. Every 50 epochs it prints the cost over the training set, the training
accuracy, and the size of the first layer's gradient dW; at the end, the accuracy on a fresh spiral
drawn with another seed.

    python examples/spiral_classifier.py
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Tensor, data, loop, manual_seed, nn, no_grad, optim

EPOCHS = 200


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with no_grad():
        return float(np.mean(model(Tensor(X)).data.argmax(axis=1) == y))


def main() -> None:
    manual_seed(0)
    X, y = data.make_spiral(300, seed=0)
    X_test, y_test = data.make_spiral(300, seed=1)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    loader = data.DataLoader(X, y, batch_size=64, seed=0)

    def report(end: loop.Epoch) -> None:
        if end.epoch == 1 or end.epoch % 50 == 0:
            with no_grad():
                cost = loss_fn(model(Tensor(X)), y).item()
            dW = model[0].weight.grad  # the last mini-batch's gradient of the first layer
            print(f"epoch {end.epoch:4d}  cost J {cost:.4f}  train accuracy {accuracy(model, X, y):.3f}  "
                  f"|dW1| {np.linalg.norm(dW):.4f}")

    done = loop.fit(optimizer, loader, lambda xb, yb: loss_fn(model(Tensor(xb)), yb), epochs=EPOCHS, on_epoch=report)
    print(f"trained in {done.seconds:.2f} s")
    print(f"train accuracy {accuracy(model, X, y):.3f}  test accuracy {accuracy(model, X_test, y_test):.3f}")


if __name__ == "__main__":
    main()
