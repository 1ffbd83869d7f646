"""`loop.fit`, the one training loop: its hooks, its epoch loss and its interruption."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from tinygrad_lite import Tensor, data, loop, manual_seed, nn, optim


def _setup(samples: int = 50, batch_size: int | None = 16):
    manual_seed(0)
    X, y = data.make_moons(samples, seed=0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    loss_fn = nn.CrossEntropyLoss()
    return model, optim.SGD(model.parameters(), lr=0.1), data.DataLoader(X, y, batch_size=batch_size), \
        (lambda xb, yb: loss_fn(model(Tensor(xb)), yb))


def test_fit_is_the_loop_written_by_hand():
    model, opt, loader, loss_of = _setup()
    steps, epochs = [], []
    done = loop.fit(opt, loader, loss_of, epochs=3, on_step=steps.append, on_epoch=epochs.append)
    by_hand, opt2, loader2, loss_of2 = _setup()
    expected = []
    for _ in range(3):
        total = 0.0
        for xb, yb in loader2:
            loss = loss_of2(xb, yb)
            opt2.zero_grad()
            loss.backward()
            opt2.step()
            total += loss.item() * len(yb)
        expected.append(total / 50)
    for p, q in zip(model.parameters(), by_hand.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert [e.loss for e in epochs] == pytest.approx(expected, rel=1e-12)
    assert [e.epoch for e in epochs] == [1, 2, 3] and done.epoch == 3 and done.steps == 12
    assert [(s.epoch, s.batch, s.size) for s in steps[:5]] == [(1, 1, 16), (1, 2, 16), (1, 3, 16), (1, 4, 2),
                                                                (2, 1, 16)]
    assert [s.steps for s in steps] == list(range(1, 13))
    assert all(a.seconds <= b.seconds for a, b in zip(steps, steps[1:]))


def test_a_hook_that_returns_true_stops_the_loop():
    _, opt, loader, loss_of = _setup()
    done = loop.fit(opt, loader, loss_of, epochs=5, on_step=lambda s: s.steps == 6)
    assert done.stopped and done.steps == 6 and done.epoch == 1  # stopped in epoch 2
    _, opt, loader, loss_of = _setup()
    done = loop.fit(opt, loader, loss_of, epochs=5, on_epoch=lambda e: e.epoch == 2)
    assert done.stopped and done.epoch == 2 and done.steps == 8


def test_resuming_at_first_epoch_counts_on():
    _, opt, loader, loss_of = _setup()
    seen = []
    done = loop.fit(opt, loader, loss_of, epochs=4, first_epoch=3, on_epoch=lambda e: seen.append(e.epoch))
    assert seen == [3, 4] and done.epoch == 4
    assert loop.fit(opt, loader, loss_of, epochs=4, first_epoch=5).epoch == 4  # nothing left to do
    with pytest.raises(ValueError, match="fit: epochs"):
        loop.fit(opt, loader, loss_of, epochs=2, first_epoch=5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_batch_then_stops(signum):
    _, opt, loader, loss_of = _setup()
    before = signal.getsignal(signum)

    def send(step: loop.Step) -> None:
        if step.steps == 6:  # the second batch of epoch 2
            signal.raise_signal(signum)

    with loop.Interruption() as interruption:
        done = loop.fit(opt, loader, loss_of, epochs=5, on_step=send, interruption=interruption)
    assert done.signal == signum and done.steps == 6 and done.epoch == 1
    assert interruption.exit_status == 128 + signum
    assert signal.getsignal(signum) is before  # the handlers are put back


def test_a_second_sigint_ends_the_run_as_without_the_interruption():
    _, opt, loader, loss_of = _setup()
    with pytest.raises(KeyboardInterrupt), loop.Interruption() as interruption:
        signal.raise_signal(signal.SIGINT)
        assert interruption.signal == signal.SIGINT
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
