"""Fit y = X @ w + b by gradient descent and compare with the exact least-squares answer.

A single `nn.Linear(3, 1)` trained with full-batch gradient descent (the article's W -= lr*dW,
b -= lr*db on the cost J = mean squared error) recovers the same W and b that `np.linalg.lstsq`
computes in closed form, and its final cost approaches the noise variance.

    python examples/regression.py
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Tensor, data, loop, manual_seed, nn, optim

FEATURES = 3
NOISE = 0.1
STEPS = 300


def main() -> None:
    manual_seed(0)
    X, y = data.make_regression(500, n_features=FEATURES, noise=NOISE, seed=0)
    model = nn.Linear(FEATURES, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.1)  # full batch: plain gradient descent
    loss_fn = nn.MSELoss()

    def report(end: loop.Epoch) -> None:  # an epoch is one step here: the whole dataset is the batch
        if end.epoch in (1, 10, 30, 100, STEPS):
            print(f"step {end.epoch:4d}  cost J {end.loss:.6f}  |dW| {np.linalg.norm(model.weight.grad):.2e}")

    loop.fit(optimizer, [(X, y)], lambda inputs, targets: loss_fn(model(Tensor(inputs)), targets), epochs=STEPS,
             on_epoch=report)

    design = np.column_stack([X, np.ones(len(X))]).astype(np.float64)
    exact, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    exact_cost = float(np.mean((design @ exact - y) ** 2))
    print("learned W", np.array2string(model.weight.data.ravel(), precision=4), f"b {model.bias.data[0]:.4f}")
    print("lstsq   W", np.array2string(exact[:-1].ravel().astype(np.float32), precision=4), f"b {exact[-1, 0]:.4f}")
    learned = np.concatenate([model.weight.data.ravel(), model.bias.data])
    print(f"max |learned - lstsq| {np.max(np.abs(learned - exact.ravel())):.2e}")
    print(f"final cost J {loss_fn(model(Tensor(X)), y).item():.6f}  least-squares cost {exact_cost:.6f}  "
          f"noise variance {NOISE**2:.6f}")


if __name__ == "__main__":
    main()
