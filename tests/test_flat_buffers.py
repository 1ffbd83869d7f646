"""Flat parameter buffers stay correct whatever the user does to parameters, grads and state.

Each scenario runs through the numba backend and is checked against the same scenario written
directly with the numpy reference rules in `optim/functional.py`, one parameter at a time.
"""

import copy
import threading

import numpy as np
import pytest

from tinygrad_lite import Tensor, nn, optim
from tinygrad_lite.optim import functional

LR, BETA1, BETA2, EPS = 0.01, 0.9, 0.999, 1e-8


class ReferenceAdam:
    """Adam kept per parameter with plain arrays: what the flat buffers must reproduce."""

    def __init__(self, arrays, lr=LR):
        self.lr = lr
        self.state = [[np.zeros_like(a), np.zeros_like(a), 0] for a in arrays]

    def step(self, arrays, grads):
        for a, g, s in zip(arrays, grads, self.state):
            if g is None:
                continue
            s[2] += 1
            functional.adam(a, g.astype(a.dtype), s[0], s[1], lr=self.lr, beta1=BETA1, beta2=BETA2, eps=EPS,
                            weight_decay=0.0, bias_correction1=1 - BETA1 ** s[2], bias_correction2=1 - BETA2 ** s[2])


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=2e-5 if np.asarray(a).dtype == np.float32 else 1e-10, atol=1e-6)


def run_both(params, n_steps, rng, between=None):
    """Step an optimizer on `params` and the reference on copies with the same grads; compare after each step."""
    copies = [p.data.copy() for p in params]
    opt, ref = optim.Adam(params, lr=LR), ReferenceAdam(copies)
    for step in range(n_steps):
        grads = [rng.standard_normal(p.shape) for p in params]
        for p, g in zip(params, grads):
            p.grad = g.astype(p.dtype)
        opt.step()
        ref.step(copies, grads)
        for p, c in zip(params, copies):
            assert p.dtype == c.dtype
            close(p.data, c)
        if between is not None:
            between(step, params, copies)
    return opt


@pytest.mark.parametrize("size", [0, 1, 7, 1000, 100_003])
def test_sizes(size):
    rng = np.random.default_rng(size)
    params = [Tensor(rng.standard_normal(size).astype(np.float32), requires_grad=True),
              Tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)]
    run_both(params, 5, rng)


def test_non_contiguous_parameters():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 8))
    params = [Tensor(base[:, ::2], requires_grad=True), Tensor(base.T, requires_grad=True)]
    assert not params[0].data.flags.c_contiguous
    run_both(params, 5, rng)


def test_mixed_dtypes_get_one_buffer_each_and_keep_their_dtype():
    rng = np.random.default_rng(1)
    params = [Tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True),
              Tensor(rng.standard_normal(4), requires_grad=True),
              Tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)]
    opt = run_both(params, 5, rng)
    (chunks,) = opt._buffers
    assert sorted(c.param_buf.dtype.name for c in chunks) == ["float32", "float64"]
    assert [p.dtype for p in params] == [np.float32, np.float64, np.float32]


def test_several_param_groups_use_their_own_hyperparameters():
    rng = np.random.default_rng(2)
    a, b = (Tensor(rng.standard_normal(6), requires_grad=True) for _ in range(2))
    copies = [a.data.copy(), b.data.copy()]
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=LR)
    refs = [ReferenceAdam([copies[0]], LR), ReferenceAdam([copies[1]], 0.1)]
    for _ in range(5):
        grads = [rng.standard_normal(6) for _ in range(2)]
        a.grad, b.grad = grads
        opt.step()
        refs[0].step([copies[0]], [grads[0]])
        refs[1].step([copies[1]], [grads[1]])
    close(a.data, copies[0])
    close(b.data, copies[1])


def test_add_param_group_joins_later():
    rng = np.random.default_rng(3)
    a, b = (Tensor(rng.standard_normal(4), requires_grad=True) for _ in range(2))
    copies = [a.data.copy(), b.data.copy()]
    opt, ref_a, ref_b = optim.Adam([a], lr=LR), ReferenceAdam([copies[0]]), ReferenceAdam([copies[1]])
    for step in range(6):
        if step == 3:
            opt.add_param_group({"params": [b]})
        grads = [rng.standard_normal(4) for _ in range(2)]
        a.grad = grads[0]
        ref_a.step([copies[0]], [grads[0]])
        if step >= 3:
            b.grad = grads[1]
            ref_b.step([copies[1]], [grads[1]])
        opt.step()
    close(a.data, copies[0])
    close(b.data, copies[1])


def test_writes_into_data_are_seen_by_the_next_step():
    def write(step, params, copies):
        params[0].data[...] = 0.5
        params[1].data[1] = -2.0
        copies[0][...] = 0.5
        copies[1][1] = -2.0

    rng = np.random.default_rng(4)
    run_both([Tensor(rng.standard_normal((2, 3)), requires_grad=True), Tensor(rng.standard_normal(3),
                                                                             requires_grad=True)], 4, rng, write)


def test_rebinding_data_is_detected_and_the_new_array_is_updated():
    def rebind(step, params, copies):
        new = np.full(params[0].shape, float(step))
        params[0].data = new
        copies[0][...] = new

    rng = np.random.default_rng(5)
    params = [Tensor(rng.standard_normal(5), requires_grad=True), Tensor(rng.standard_normal(2), requires_grad=True)]
    run_both(params, 4, rng, rebind)


def test_rebinding_data_to_another_shape_is_a_clear_error():
    p = Tensor(np.ones(4), requires_grad=True)
    opt = optim.Adam([p])
    p.data = np.ones(5)
    p.grad = np.ones(5)
    with pytest.raises(ValueError, match=r"changed from shape \(4,\) float64 to \(5,\) float64"):
        opt.step()
    fresh = optim.Adam([p], lr=0.5)  # as the message says, while the old optimizer still lives
    fresh.step()
    assert p.data.shape == (5,) and (p.data < 1).all()


def test_model_load_state_dict_then_step():
    rng = np.random.default_rng(6)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=LR)
    saved = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in model.state_dict().items()}
    model.load_state_dict(saved)
    params = list(model.parameters())
    copies = [p.data.copy() for p in params]
    for p, value in zip(params, saved.values()):
        np.testing.assert_array_equal(p.data, value)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    ReferenceAdam(copies).step(copies, grads)
    for p, c in zip(params, copies):
        close(p.data, c)


def test_optimizer_state_dict_round_trip_continues_the_same_path():
    rng = np.random.default_rng(7)
    start = [rng.standard_normal(5), rng.standard_normal((2, 2))]
    grads = [[rng.standard_normal(a.shape) for a in start] for _ in range(6)]
    straight = [Tensor(a.copy(), requires_grad=True) for a in start]
    resumed = [Tensor(a.copy(), requires_grad=True) for a in start]
    opt = optim.Adam(straight, lr=LR)
    first = optim.Adam(resumed, lr=LR)
    for step, gs in enumerate(grads):
        for p, q, g in zip(straight, resumed, gs):
            p.grad, q.grad = g, g
        opt.step()
        first.step()
        if step == 2:  # continue in a new optimizer from the saved state
            second = optim.Adam(resumed, lr=LR)
            second.load_state_dict(first.state_dict())
            first = second
    for p, q in zip(straight, resumed):
        close(q.data, p.data)


def test_parameters_without_grads_are_skipped_and_keep_their_step_count():
    rng = np.random.default_rng(8)
    params = [Tensor(rng.standard_normal(3), requires_grad=True) for _ in range(2)]
    copies = [p.data.copy() for p in params]
    opt, ref = optim.Adam(params, lr=LR), ReferenceAdam(copies)
    for step in range(4):
        grads = [rng.standard_normal(3), None if step == 1 else rng.standard_normal(3)]
        opt.zero_grad()
        for p, g in zip(params, grads):
            if g is not None:
                p.grad = g
        opt.step()
        ref.step(copies, grads)
    for p, c in zip(params, copies):
        close(p.data, c)
    assert [opt.state[p]["step"] for p in params] == [4, 3]


def test_grads_from_backward_reach_the_flat_buffer_and_stay_there_with_set_to_none_false():
    model = nn.Linear(3, 2)
    params = list(model.parameters())
    opt = optim.SGD(params, lr=0.1)
    (buffer,) = opt._buffers[0]
    x = Tensor(np.ones((4, 3), np.float32))
    for zero in ("none", "none", "zeros", "zeros"):
        if zero == "none":
            opt.zero_grad()
        else:
            opt.zero_grad(set_to_none=False)
            views = [p.grad for p in params]
            assert all(np.shares_memory(v, buffer.grad_buf) and not v.any() for v in views)
        (model(x) * model(x)).sum().backward()
        if zero == "zeros":  # backward added into the views in place: the step has nothing to copy
            assert all(p.grad is v for p, v in zip(params, views))
        grads, before = [p.grad.copy() for p in params], [p.data.copy() for p in params]
        opt.step()
        for p, g, b, view in zip(params, grads, before, buffer.grad_views):
            assert p.grad is view  # copied in and rebound when backward made new grads
            np.testing.assert_array_equal(view, g)
            close(p.data, b - np.float32(0.1) * g)


@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_a_misfit_found_at_step_time_changes_no_parameter(backend):
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    b = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1, backend=backend)
    (a.sum() + b.sum()).backward()
    b.data = np.ones(5, np.float32)  # a new shape the optimizer's state cannot follow
    with pytest.raises(ValueError, match=r"changed from shape \(2,\)"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3, np.float32))


@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_maximize_in_a_step_that_skips_a_parameter_leaves_the_grads_as_they_were(backend):
    a, b = (Tensor(np.ones(3, np.float32), requires_grad=True) for _ in range(2))
    opt = optim.SGD([a, b], lr=0.1, maximize=True, backend=backend)
    (a * 2).sum().backward()  # b gets no grad, so the step updates a's elements on their own
    opt.step()
    np.testing.assert_array_equal(a.grad, np.full(3, 2, np.float32))  # it read -2 here
    np.testing.assert_allclose(a.data, np.full(3, 1.2, np.float32))
    assert b.grad is None and (b.data == 1).all()


@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_steps_that_skip_a_parameter_stay_correct_afterwards(backend):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(4) for _ in range(3)]
    fast = [Tensor(v.copy(), requires_grad=True) for v in values]
    reference = [Tensor(v.copy(), requires_grad=True) for v in values]
    opt = optim.Adam(fast, lr=0.1, backend=backend)
    ref_opt = optim.Adam(reference, lr=0.1, backend="numpy")
    for step in range(4):
        for params, o in ((fast, opt), (reference, ref_opt)):
            o.zero_grad()
            used = params if step != 1 else params[:2]  # step 2 gives the last parameter no grad
            sum((p * p).sum() for p in used).backward()
            o.step()
    assert [s["step"] for s in opt.state.values()] == [4, 4, 3]
    for p, q in zip(fast, reference):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12)


@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_two_optimizers_on_the_same_parameters_share_their_buffers_and_copy_nothing(backend):
    rng = np.random.default_rng(9)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    params = list(model.parameters())
    copies = [p.data.copy() for p in params]
    sgd, adam = optim.SGD(params, lr=0.1, backend=backend), optim.Adam(params, lr=LR, backend=backend)
    ref_adam = ReferenceAdam(copies)
    arrays = [(p.data, p.grad) for p in params]
    for step in range(6):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        if step % 2:
            adam.step()
            ref_adam.step(copies, grads)
        else:
            sgd.step()
            for c, g in zip(copies, grads):
                c -= np.float32(0.1) * g
        if step == 0:
            arrays = [(p.data, p.grad) for p in params]
        assert all(p.data is a and p.grad is g for p, (a, g) in zip(params, arrays)), "a parameter moved"
        for p, c in zip(params, copies):
            close(p.data, c)
    assert sgd._buffers[0][0].param_buf is adam._buffers[0][0].param_buf


def test_the_engine_tells_when_a_data_or_grad_array_is_replaced():
    """`rebind_epoch` changes when .data or .grad is rebound (or backward creates a grad), not on writes into them."""
    from tinygrad_lite import _tensor

    p = Tensor(np.ones(3), requires_grad=True)
    before = _tensor.rebind_epoch
    (p * 2).sum().backward()  # the first grad: a new array
    assert _tensor.rebind_epoch != before
    before = _tensor.rebind_epoch
    (p * 3).sum().backward()  # added into the same array
    p.data[...] = 4.0
    p.grad[...] = 1.0
    assert _tensor.rebind_epoch == before
    for rebind in (lambda: setattr(p, "data", np.zeros(3)), lambda: setattr(p, "grad", np.zeros(3)),
                   lambda: setattr(p, "grad", None)):
        rebind()
        assert _tensor.rebind_epoch != before
        before = _tensor.rebind_epoch


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_steps_with_nothing_rebound_then_a_rebound_grad_or_a_missing_grad(backend):
    """The step that skips the per-parameter check (nothing rebound since all were in place) stays correct."""
    rng = np.random.default_rng(10)
    params = [Tensor(rng.standard_normal(4), requires_grad=True), Tensor(rng.standard_normal(3), requires_grad=True)]
    copies = [p.data.copy() for p in params]
    opt, ref = optim.Adam(params, lr=LR, backend=backend), ReferenceAdam(copies)
    grads = [rng.standard_normal(p.shape) for p in params]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    for _ in range(3):  # grads stay in place: steps 2 and 3 skip the check
        opt.step()
        ref.step(copies, grads)
    new = rng.standard_normal(3)
    params[1].grad = new  # rebound: the next step must copy it in
    grads[1] = new
    opt.step()
    ref.step(copies, grads)
    params[0].grad = None  # and now one parameter has none: it must not move, twice
    for _ in range(2):
        opt.step()
        ref.step(copies, [None, grads[1]])
    for p, c in zip(params, copies):
        close(p.data, c)
    assert [entry["step"] for entry in opt.state.values()] == [4, 6]


def test_a_misfit_changes_no_tensor_and_steady_steps_announce_no_rebinding():
    from tinygrad_lite import _tensor

    a, b = Tensor(np.ones(3, np.float32), requires_grad=True), Tensor(np.ones(2, np.float32), requires_grad=True)
    first, second = optim.SGD([a, b], lr=0.1), optim.Adam([a, b], lr=0.1)
    for _ in range(2):
        for opt in (first, second):
            opt.zero_grad(set_to_none=False)
            (a.sum() + b.sum()).backward()
            opt.step()
    epoch = _tensor.rebind_epoch
    for opt in (first, second):  # both optimizers share one buffer; neither moves an array now
        opt.zero_grad(set_to_none=False)
        (a.sum() + b.sum()).backward()
        opt.step()
    assert _tensor.rebind_epoch == epoch
    new_a, new_b = np.zeros(3, np.float32), np.zeros(5, np.float32)
    a.data, b.data = new_a, new_b  # a fits, b does not
    with pytest.raises(ValueError, match=r"changed from shape \(2,\)"):
        first.step()
    assert a.data is new_a and b.data is new_b


# ---- backward and the optimizer's views: nested and concurrent backward passes, copies ----------------


def _stepped_linear(rng, n_in=4, n_out=3):
    """A Linear whose grads are views of an optimizer's buffer: one SGD step with lr 0 (the data stays as drawn)."""
    lin = nn.Linear(n_in, n_out)
    for p in lin.parameters():
        p.data = rng.standard_normal(p.shape).astype(np.float32)
    opt = optim.SGD(lin.parameters(), lr=0.0)
    lin(Tensor(np.ones((2, n_in), np.float32))).sum().backward()
    opt.step()
    opt.zero_grad()
    return lin, opt


def test_a_backward_run_by_a_hook_inside_another_gives_both_grads_as_without_an_optimizer():
    rng = np.random.default_rng(0)
    lin, _ = _stepped_linear(rng)
    plain = nn.Linear(4, 3)
    for p, q in zip(plain.parameters(), lin.parameters()):
        p.data = q.data.copy()
    x0 = Tensor(rng.standard_normal((5, 4)).astype(np.float32))
    for layer in (lin, plain):  # the hook's backward runs after the outer one has made dW, before W takes it
        x = Tensor(x0.data.copy(), requires_grad=True) * 1.0
        x.register_hook(lambda g, layer=layer: (layer(x0) ** 2).sum().backward())
        layer(x).sum().backward()
    np.testing.assert_array_equal(lin.weight.grad, plain.weight.grad)
    np.testing.assert_array_equal(lin.bias.grad, plain.bias.grad)


def test_two_threads_backward_through_one_layer_add_both_grads():
    rng = np.random.default_rng(1)
    lin, opt = _stepped_linear(rng, 256, 256)
    xs = [rng.standard_normal((128, 256)).astype(np.float32) for _ in range(2)]
    expected = []
    for x in xs:
        opt.zero_grad()
        (lin(Tensor(x)) ** 2).sum().backward()
        expected.append(lin.weight.grad.copy())
    opt.step()
    def work(x, barrier):
        barrier.wait()
        (lin(Tensor(x)) ** 2).sum().backward()

    for _ in range(20):
        opt.zero_grad()
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=work, args=(x, barrier)) for x in xs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        np.testing.assert_allclose(lin.weight.grad, expected[0] + expected[1], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("state_dtype", ["float32", "int8"])
def test_a_deep_copy_of_model_and_optimizer_steps_the_copy_as_the_original_steps_itself(state_dtype):
    from tinygrad_lite.optim import lr_scheduler

    model = nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 1))
    opt = optim.Adam(model.parameters(), lr=0.01, state_dtype=state_dtype, lowbit_min_size=0, block_size=64)
    schedule = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x = Tensor(np.random.default_rng(0).standard_normal((8, 30)).astype(np.float32))

    def train(m, o, s):
        for _ in range(3):
            o.zero_grad()
            (m(x) ** 2).mean().backward()
            o.step()
            s.step()

    train(model, opt, schedule)
    model2, opt2, schedule2 = copy.deepcopy((model, opt, schedule))
    before = [p.data.copy() for p in model.parameters()]
    train(model2, opt2, schedule2)  # it once stepped the original's buffers, and so the original model
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    train(model, opt, schedule)
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] and schedule2.optimizer is opt2
