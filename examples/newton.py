"""Curvature of a small network's loss, and Newton's method built from Hessian-vector products.

    python examples/newton.py

A 1-8-1 tanh network fits y = sin(x) on 32 points (its cost J is the mean squared error). The script
1. takes the full Hessian of J with respect to all 25 parameters by `hessian()` and checks it against
   central differences of the gradient (prints the largest difference);
2. prints its extreme eigenvalues and the condition number |lambda|max / |lambda|min, the ravine's
   elongation: gradient descent is stable only for lr < 2 / lambda_max, so the flattest direction moves
   by at most 2 lambda_min / lambda_max of its distance per step;
3. trains twice from the same start, with 20 steps of gradient descent at lr = 1 / lambda_max, and with
   20 Newton steps, each solving (H + damping I) d = -g by conjugate gradients that touch H only through
   `hvp` (two backward passes per product, never the 625-entry matrix), and prints J after each run.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Tensor, grad
from tinygrad_lite.autograd.functional import hessian, hvp

rng = np.random.default_rng(0)
X = np.linspace(-3, 3, 32).reshape(-1, 1)
Y = np.sin(X)
SHAPES = [(8, 1), (8,), (1, 8), (1,)]  # W1, b1, W2, b2


def cost(theta: Tensor) -> Tensor:
    """J(theta): the network's mean squared error, with every parameter in one vector theta."""
    params, start = [], 0
    for shape in SHAPES:
        size = int(np.prod(shape))
        params.append(theta[start:start + size].reshape(shape))
        start += size
    W1, b1, W2, b2 = params
    prediction = (Tensor(X) @ W1.T + b1).tanh() @ W2.T + b2
    return ((prediction - Tensor(Y)) ** 2).mean()


def gradient(theta: np.ndarray) -> np.ndarray:
    t = Tensor(theta, requires_grad=True)
    return grad(cost(t), t)[0].data


def conjugate_gradients(theta: np.ndarray, b: np.ndarray, damping: float, iterations: int = 50) -> np.ndarray:
    """Solve (H + damping I) d = b, touching H only through Hessian-vector products."""
    def product(v: np.ndarray) -> np.ndarray:
        return hvp(cost, Tensor(theta), Tensor(v))[1].data + damping * v

    d = np.zeros_like(b)
    residual = b.copy()
    direction = residual.copy()
    for _ in range(iterations):
        if np.sqrt(residual @ residual) < 1e-10:
            break
        Hp = product(direction)
        alpha = (residual @ residual) / (direction @ Hp)
        d += alpha * direction
        new_residual = residual - alpha * Hp
        direction = new_residual + (new_residual @ new_residual) / (residual @ residual) * direction
        residual = new_residual
    return d


def newton(theta: np.ndarray, steps: int) -> np.ndarray:
    """Damped Newton: d from conjugate gradients, damping raised until the step lowers J (Levenberg-Marquardt)."""
    damping = 1.0
    for _ in range(steps):
        before = cost(Tensor(theta)).item()
        while True:
            d = conjugate_gradients(theta, -gradient(theta), damping)
            if cost(Tensor(theta + d)).item() < before:
                theta, damping = theta + d, max(damping / 3, 1e-6)
                break
            damping *= 4
    return theta


def main() -> None:
    theta0 = np.concatenate([rng.normal(0, 1, int(np.prod(s))) for s in SHAPES])
    H = hessian(cost, Tensor(theta0)).data
    eps = 1e-6
    numeric = np.stack([(gradient(theta0 + eps * e) - gradient(theta0 - eps * e)) / (2 * eps)
                        for e in np.eye(theta0.size)])
    print(f"parameters {theta0.size}, Hessian entries {H.size}")
    print(f"largest |hessian() - finite differences| {np.abs(H - numeric).max():.2e}")
    eigenvalues = np.linalg.eigvalsh(H)
    print(f"eigenvalues min {eigenvalues[0]:.4g} max {eigenvalues[-1]:.4g}")
    magnitudes = np.abs(eigenvalues)
    print(f"|eigenvalues| smallest {magnitudes.min():.4g} largest {magnitudes.max():.4g}")
    print(f"condition number {magnitudes.max() / magnitudes.min():.4g}")

    theta = theta0.copy()
    lr = 1 / eigenvalues[-1]
    for _ in range(20):
        theta = theta - lr * gradient(theta)
    print(f"cost J at start {cost(Tensor(theta0)).item():.4g}")
    print(f"cost J after 20 gradient descent steps {cost(Tensor(theta)).item():.4g}")
    print(f"cost J after 20 Newton-CG steps {cost(Tensor(newton(theta0.copy(), 20))).item():.4g}")


if __name__ == "__main__":
    main()
