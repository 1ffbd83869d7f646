"""Classify scikit-learn's 8x8 handwritten digits with an MLP, written as a PyTorch user writes it.

The images go in as (N, 8, 8) and `view` flattens them; the model has BatchNorm1d and Dropout; the loss
uses label smoothing; `clip_grad_norm_` bounds each step; `eval()` and `no_grad()` measure the accuracy
(`argmax(dim=1)`) on a held-out fifth of the data, standardised with the training split's statistics.
Reaches about 97% test accuracy in a few seconds. Needs the data extra: pip install "tinygrad_lite[data]".

    python examples/digits_mlp.py
"""

from __future__ import annotations

import time

import numpy as np

from tinygrad_lite import Tensor, data, manual_seed, nn, no_grad, optim

EPOCHS = 10


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()  # BatchNorm1d uses its running statistics, Dropout passes everything
    with no_grad():
        x = Tensor(images)
        predicted = model(x.view(x.size(0), -1)).argmax(dim=1)
    return float(np.mean(predicted.numpy() == labels))


def main() -> None:
    manual_seed(0)
    X, y = data.load_digits()
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_fraction=0.2, seed=0)
    X_train, X_test = data.standardize(X_train, X_test)
    images_train, images_test = X_train.reshape(-1, 8, 8), X_test.reshape(-1, 8, 8)

    model = nn.Sequential(
        nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 10),
    )
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    loader = data.DataLoader(data.TensorDataset(images_train, y_train), batch_size=64, seed=0)

    start = time.perf_counter()
    for epoch in range(1, EPOCHS + 1):
        model.train()
        total, count = 0.0, 0
        for images, labels in loader:
            x = Tensor(images)
            loss = loss_fn(model(x.view(x.size(0), -1)), labels)
            optimizer.zero_grad()
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            total, count = total + loss.item() * len(labels), count + len(labels)
        if epoch == 1 or epoch % 5 == 0:
            print(f"epoch {epoch:3d}  loss {total / count:.4f}  grad norm {norm.item():.3f}  "
                  f"test accuracy {accuracy(model, images_test, y_test):.4f}")
    seconds = time.perf_counter() - start
    print(f"trained in {seconds:.2f} s")
    print(f"train accuracy {accuracy(model, images_train, y_train):.4f}  "
          f"test accuracy {accuracy(model, images_test, y_test):.4f}")


if __name__ == "__main__":
    main()
