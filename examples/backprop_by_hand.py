"""Backprop by hand: dW1, db1, dW2, db2 of a one-hidden-layer network, derived in numpy and checked against autograd.

The article's notation: examples are columns, so X is (n_x, m) and Y is (1, m); layer l has
W[l] of shape (n_l, n_(l-1)) and b[l] of shape (n_l, 1).

    forward                               backward (L is one example's loss, J = (1/m) sum of L)
    Z1 = W1 X + b1                        dZ2 = A2 - Y                      (sigmoid + cross-entropy)
    A1 = tanh(Z1)                         dW2 = (1/m) dZ2 A1^T,  db2 = (1/m) sum_i dZ2[:, i]
    Z2 = W2 A1 + b2                       dZ1 = W2^T dZ2 * (1 - A1^2)       (tanh' = 1 - tanh^2)
    A2 = sigmoid(Z2)                      dW1 = (1/m) dZ1 X^T,   db1 = (1/m) sum_i dZ1[:, i]
    L = -(Y log A2 + (1 - Y) log(1 - A2))

tinygrad_lite's nn.Linear stores W as (out, in) like W[l], but takes examples as rows (x @ W.T + b),
so the hand-derived dW compare directly and the Z's and A's are the transposes of the rows it holds.

Run: python examples/backprop_by_hand.py
"""

from __future__ import annotations

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import Tensor, nn


def make_problem(m: int = 8, n_x: int = 2, n_h: int = 4, seed: int = 0):
    """A float64 network 2-4-1 (tanh, sigmoid), m examples as rows, and {name: parameter} for W1, b1, W2, b2."""
    tl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(n_x, n_h, dtype=np.float64), nn.Tanh(),
                          nn.Linear(n_h, 1, dtype=np.float64), nn.Sigmoid())
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n_x))
    Y = (X[:, :1] * X[:, 1:] > 0).astype(np.float64)  # label: same sign in both coordinates
    params = {"W1": model[0].weight, "b1": model[0].bias, "W2": model[2].weight, "b2": model[2].bias}
    return model, X, Y, params


def hand_gradients(X_rows: np.ndarray, Y_rows: np.ndarray, W1, b1, W2, b2) -> dict[str, np.ndarray]:
    """The article's backward pass, with examples as columns; b's and db's are column vectors (n_l, 1)."""
    X, Y = X_rows.T, Y_rows.T
    m = X.shape[1]
    b1, b2 = b1.reshape(-1, 1), b2.reshape(-1, 1)
    Z1 = W1 @ X + b1
    A1 = np.tanh(Z1)
    Z2 = W2 @ A1 + b2
    A2 = 1 / (1 + np.exp(-Z2))
    dZ2 = A2 - Y
    dW2 = dZ2 @ A1.T / m
    db2 = dZ2.sum(axis=1, keepdims=True) / m
    dZ1 = (W2.T @ dZ2) * (1 - A1**2)
    dW1 = dZ1 @ X.T / m
    db1 = dZ1.sum(axis=1, keepdims=True) / m
    return {"dZ1": dZ1, "dZ2": dZ2, "dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def autograd_backward(model: nn.Module, X: np.ndarray, Y: np.ndarray, params: dict[str, Tensor]) -> tl.introspect.Trace:
    """J = mean of the losses L, then J.backward() inside a trace that names the parameters and X."""
    x, y = Tensor(X), Tensor(Y)
    x.name, y.name = "X", "Y"
    J = nn.BCELoss()(model(x), y)
    with tl.trace(names=params) as tr:
        J.backward()
    return tr


def main() -> None:
    model, X, Y, params = make_problem()
    tr = autograd_backward(model, X, Y, params)
    hand = hand_gradients(X, Y, *(params[name].data for name in ("W1", "b1", "W2", "b2")))
    np.set_printoptions(precision=5, suppress=True)
    print(f"one hidden layer: X {X.T.shape} (n_x, m), W1 {params['W1'].shape}, W2 {params['W2'].shape}\n")
    for name in ("W1", "b1", "W2", "b2"):
        by_hand = hand[f"d{name}"]
        autograd = params[name].grad.reshape(by_hand.shape)
        print(f"d{name} by hand (article's shapes):\n{by_hand}")
        print(f"d{name} from autograd ({name}.grad):\n{autograd}")
        print(f"max |difference| = {np.max(np.abs(by_hand - autograd)):.2e}\n")
    print("The same backward pass, step by step (tinygrad_lite.trace):")
    print(tr.table())
    print("\nmean is J = mean(L), 1/m to each loss; binary_cross_entropy sends dJ/dA2 = (A2 - Y) / (A2 (1 - A2)) / m;\n"
          "sigmoid turns it into dZ2 / m; the linear steps send dW2, db2, then dW1, db1 (rows of the grads above).")


if __name__ == "__main__":
    main()
