import numpy as np

from tinygrad_lite import Tensor, data, nn, optim


def test_spiral_mlp_learns():
    X, y = data.make_spiral(300, seed=0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = optim.Adam(model.parameters(), lr=0.02)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(100):
        for xb, yb in data.DataLoader(X, y, batch_size=64, seed=1):
            loss = loss_fn(model(Tensor(xb)), yb)
            first = first if first is not None else loss.item()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert loss.item() < 0.3 * first
    assert np.isfinite(loss.item())
