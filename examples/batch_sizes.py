"""Batch gradient descent vs mini-batch gradient descent vs SGD on the same problem.

The article's comparison: with batch_size = all examples each update uses the exact cost J but an
epoch is a single update; with batch_size = 1 (stochastic gradient descent) an epoch is n noisy
updates and nothing is vectorised; mini-batches (64 here) sit in between and usually reach a
given loss in the least time. Every run starts from the same weights and uses the same optimizer
and learning rate; only the batch size changes. The loss is the cost J over the whole training set,
measured after each epoch.

    python examples/batch_sizes.py
"""

from __future__ import annotations

from tinygrad_lite import Tensor, data, loop, manual_seed, nn, no_grad, optim

SAMPLES = 512
TARGET_LOSS = 0.1
LR = 0.1
MAX_EPOCHS = 5000
RUNS = [("batch gradient descent", None), ("mini-batch gradient descent", 64), ("stochastic gradient descent", 1)]


def cost(model: nn.Module, X, y) -> float:
    with no_grad():
        return nn.functional.cross_entropy(model(Tensor(X)), y).item()


def run(batch_size: int | None, initial_state: dict, X, y) -> tuple[int, int, float, float]:
    """(epochs, updates, seconds) to reach TARGET_LOSS, and the final loss."""
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    model.load_state_dict(initial_state)
    optimizer = optim.SGD(model.parameters(), lr=LR)
    loader = data.DataLoader(X, y, batch_size=batch_size, seed=0)
    loss_fn = nn.CrossEntropyLoss()
    losses = [cost(model, X, y)]

    def reached(end: loop.Epoch) -> bool:  # `fit` leaves its hooks' time out: seconds is training time only
        losses.append(cost(model, X, y))
        return losses[-1] <= TARGET_LOSS

    done = loop.fit(optimizer, loader, lambda xb, yb: loss_fn(model(Tensor(xb)), yb), epochs=MAX_EPOCHS,
                    on_epoch=reached)
    return done.epoch, done.steps, done.seconds, losses[-1]


def main() -> None:
    X, y = data.make_moons(SAMPLES, noise=0.15, seed=0)
    manual_seed(0)
    initial_state = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).state_dict()
    print(f"moons, {SAMPLES} examples, SGD lr={LR}, target cost J <= {TARGET_LOSS}")
    print(f"{'method':<30}{'batch':>6}{'epochs':>8}{'updates':>9}{'seconds':>9}{'loss':>8}")
    results = {}
    for name, batch_size in RUNS:
        epochs, updates, seconds, loss = run(batch_size, initial_state, X, y)
        results[name] = (epochs, seconds)
        reached = "" if loss <= TARGET_LOSS else "  (target not reached)"
        print(f"{name:<30}{batch_size or SAMPLES:>6}{epochs:>8}{updates:>9}{seconds:>9.3f}{loss:>8.4f}{reached}")
    print(f"fewest epochs: {min(results, key=lambda k: results[k][0])}; "
          f"least time: {min(results, key=lambda k: results[k][1])}")


if __name__ == "__main__":
    main()
