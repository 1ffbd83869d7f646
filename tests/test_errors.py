"""The error catalogue: every bad input in issue 6 raises the stated type, the message names the op or argument,
the shapes or values and what was expected, and nothing changed (parameters, grads, optimizer state and steps)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lite
from tinygrad_lite import Tensor, checkpoint, cli, data, nn, ops, optim
from tinygrad_lite.nn import functional as F

ROOT = Path(__file__).parents[1]


@pytest.fixture
def setup():
    """A model after one Adam step, with grads present: the state that must survive every error."""
    tinygrad_lite.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, labels = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32), np.array([0, 1, 1, 0, 1])

    def compute_grads():
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(Tensor(x)), labels).backward()

    compute_grads()
    opt.step()
    compute_grads()
    return model, opt


def _state(model, opt):
    params = [p.data.tobytes() for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.tobytes() for p in model.parameters()]
    sd = opt.state_dict()
    opt_state = {i: {k: np.asarray(v).tobytes() for k, v in e.items()} for i, e in sd["state"].items()}
    return params, grads, repr(sd["param_groups"]), opt_state, opt.skipped_steps, len(opt.param_groups)


def _bindings(model, opt):
    """What a failed call must not rebind: each parameter's data and grad arrays, and the optimizer's flat buffers.

    A rebinding copies the values, so `_state` alone would not see it.
    """
    objects = [obj for p in model.parameters() for obj in (p.data, p.grad)]
    return objects, [id(buffer) for buffers in opt._buffers for buffer in buffers]


def _same_bindings(before, after):
    return all(a is b for a, b in zip(before[0], after[0], strict=True)) and before[1] == after[1]


def _ones(*shape, grad=False):
    return Tensor(np.ones(shape), requires_grad=grad)


# Each case: (id, exception type, fragments the message must contain, a function of (model, opt)).
CASES = [
    # shapes in @, broadcasting ops and layers
    ("matmul", ValueError, ["matmul", "(2, 3)", "(4, 5)", "same k"], lambda m, o: _ones(2, 3, grad=True) @ _ones(4, 5)),
    ("matmul-vector", ValueError, ["matmul", "(3,)", "(2,)"], lambda m, o: _ones(3, grad=True) @ _ones(2)),
    ("linear-layer", ValueError, ["linear", "(2, 5)", "in_features = 3"], lambda m, o: m(_ones(2, 5))),
    ("add", ValueError, ["add", "(2, 3)", "(4,)", "broadcast"], lambda m, o: _ones(2, 3, grad=True) + _ones(4)),
    ("sub", ValueError, ["sub", "(2, 3)", "(2,)"], lambda m, o: _ones(2, 3, grad=True) - _ones(2)),
    ("mul", ValueError, ["mul", "(3, 1)", "(2, 4)"], lambda m, o: _ones(3, 1, grad=True) * _ones(2, 4)),
    ("div", ValueError, ["div", "(5,)", "(4,)"], lambda m, o: _ones(5, grad=True) / _ones(4)),
    ("pow", ValueError, ["pow", "(2,)", "(3,)"], lambda m, o: _ones(2, grad=True) ** _ones(3)),
    ("where", ValueError, ["where", "(4,)"],
     lambda m, o: Tensor.where(np.ones((2, 3), bool), _ones(2, 3, grad=True), _ones(4))),
    ("concatenate", ValueError, ["concatenate", "(2, 3)", "(2, 4)", "axis 0"],
     lambda m, o: Tensor.concatenate([_ones(2, 3, grad=True), _ones(2, 4)])),
    ("reshape", ValueError, ["reshape", "(2, 3)", "(4,)"], lambda m, o: _ones(2, 3, grad=True).reshape(4)),
    ("clip-bounds", ValueError, ["clip", "(2, 3)", "(4,)", "broadcast"],
     lambda m, o: _ones(2, 3, grad=True).clip(np.zeros(4), 1.0)),
    ("leaky_relu-slope", ValueError, ["leaky_relu", "(2, 3)", "(2,)", "broadcast"],
     lambda m, o: _ones(2, 3, grad=True).leaky_relu(np.full(2, 0.1))),
    ("dropout-p-not-a-number", TypeError, ["dropout", "p must be a number", "'a'"],
     lambda m, o: F.dropout(m(_ones(5, 3)), "a")),
    ("dropout-p-bool", TypeError, ["dropout", "p must be a number", "True"],
     lambda m, o: F.dropout(m(_ones(5, 3)), True)),
    ("dropout-p-out-of-range", ValueError, ["Dropout", "p must be in [0, 1]", "1.5"], lambda m, o: nn.Dropout(1.5)),
    # axes, permutations and indexes: the op, the bad value, the tensor's shape and the valid range
    ("sum-axis", ops.AxisError, ["sum: axis 2", "shape (2, 3)", "-2 <= axis < 2"],
     lambda m, o: _ones(2, 3, grad=True).sum(axis=2)),
    ("sum-axis-in-tuple", ops.AxisError, ["sum: axis -3", "(2, 3)"],
     lambda m, o: _ones(2, 3, grad=True).sum(axis=(0, -3))),
    ("sum-axis-twice", ValueError, ["sum: axis (0, -2)", "same axis twice", "(2, 3)"],
     lambda m, o: _ones(2, 3, grad=True).sum(axis=(0, -2))),
    ("sum-axis-not-an-int", TypeError, ["sum: axis must be", "1.5"], lambda m, o: _ones(2, 3, grad=True).sum(axis=1.5)),
    ("sum-axis-of-0d", ops.AxisError, ["sum: axis 1", "shape ()", "-1 <= axis < 1"],
     lambda m, o: Tensor(1.0, requires_grad=True).sum(axis=1)),
    ("mean-axis", ops.AxisError, ["mean: axis -3", "(2, 3)", "-2 <= axis < 2"],
     lambda m, o: _ones(2, 3, grad=True).mean(axis=-3)),
    ("max-axis", ops.AxisError, ["max: axis 2", "(2, 3)"], lambda m, o: _ones(2, 3, grad=True).max(axis=2)),
    ("min-axis", ops.AxisError, ["min: axis 2", "(2, 3)"], lambda m, o: _ones(2, 3, grad=True).min(axis=2)),
    ("softmax-axis", ops.AxisError, ["softmax: axis 2", "(5, 2)"], lambda m, o: F.softmax(m(_ones(5, 3)), axis=2)),
    ("log_softmax-axis", ops.AxisError, ["log_softmax: axis 5", "(2, 3)"],
     lambda m, o: _ones(2, 3, grad=True).log_softmax(axis=5)),
    ("transpose-axis", ops.AxisError, ["transpose: axis 2", "(2, 3)"],
     lambda m, o: _ones(2, 3, grad=True).transpose(0, 2)),
    ("permute-axis-twice", ValueError, ["transpose: axis (1, 1)", "same axis twice"],
     lambda m, o: _ones(2, 3, grad=True).permute(1, 1)),
    ("transpose-too-few-axes", ValueError, ["transpose: axes (0,)", "(2, 3)", "permutation of all 2 axes"],
     lambda m, o: _ones(2, 3, grad=True).transpose(0)),
    ("reshape-negative-size", ValueError, ["reshape", "(-2, 3)", "one of them may be -1"],
     lambda m, o: _ones(2, 3, grad=True).reshape(-2, 3)),
    ("reshape-two-unknowns", ValueError, ["reshape", "(-1, -1)", "product is 6"],
     lambda m, o: _ones(2, 3, grad=True).reshape(-1, -1)),
    ("reshape-float-size", TypeError, ["reshape", "(1.5, 4)", "expected ints"],
     lambda m, o: _ones(2, 3, grad=True).reshape(1.5, 4)),
    ("concatenate-axis", ops.AxisError, ["concatenate: axis 2", "(2, 3)", "-2 <= axis < 2"],
     lambda m, o: Tensor.concatenate([_ones(2, 3, grad=True), _ones(2, 3)], axis=2)),
    ("concatenate-ndim", ValueError, ["concatenate", "tensor 1 has shape (3,)", "same number of dimensions"],
     lambda m, o: Tensor.concatenate([_ones(2, 3, grad=True), _ones(3)])),
    ("concatenate-nothing", ValueError, ["concatenate", "at least one tensor"], lambda m, o: Tensor.concatenate([])),
    ("concatenate-0d", ValueError, ["concatenate", "0-d", "stack"],
     lambda m, o: Tensor.concatenate([Tensor(1.0, requires_grad=True), Tensor(2.0)])),
    ("stack-shapes", ValueError, ["stack", "tensor 1 has shape (2, 4)", "(2, 3)", "equal shapes"],
     lambda m, o: Tensor.stack([_ones(2, 3, grad=True), _ones(2, 4)])),
    ("stack-axis", ops.AxisError, ["stack: axis -4", "(2, 3)", "-3 <= axis <= 2"],
     lambda m, o: Tensor.stack([_ones(2, 3, grad=True), _ones(2, 3)], axis=-4)),
    ("getitem-out-of-range", IndexError, ["getitem", "[5]", "shape (2, 3)", "index 5 is out of bounds"],
     lambda m, o: _ones(2, 3, grad=True)[5]),
    ("getitem-array", IndexError, ["getitem", "int64 array of shape (2,)", "(2, 3)", "index 7"],
     lambda m, o: _ones(2, 3, grad=True)[np.array([0, 7])]),
    ("getitem-too-many", IndexError, ["getitem", "[0, 0, 0]", "(2, 3)", "too many indices"],
     lambda m, o: _ones(2, 3, grad=True)[0, 0, 0]),
    ("linear-bias", ValueError, ["linear", "bias has shape (5,)", "(4,)", "(4, 3)"],
     lambda m, o: F.linear(_ones(2, 3), m[0].weight, _ones(5))),
    ("linear-weight-1d", ValueError, ["linear", "weight has shape (3,)", "2-D"],
     lambda m, o: F.linear(_ones(2, 3), _ones(3, grad=True))),
    # every loss
    ("mse_loss", ValueError, ["mse_loss", "(5, 2)", "(5,)", "same shape"],
     lambda m, o: nn.MSELoss()(m(_ones(5, 3)), np.ones(5))),
    ("bce", ValueError, ["binary_cross_entropy", "(5, 2)", "(2, 5)"],
     lambda m, o: nn.BCELoss()(m(_ones(5, 3)).sigmoid(), np.ones((2, 5)))),
    ("bce-range", ValueError, ["binary_cross_entropy", "[0, 1]"],
     lambda m, o: nn.BCELoss()(m(_ones(5, 3)) * 100, np.ones((5, 2)))),
    ("bce_with_logits", ValueError, ["binary_cross_entropy_with_logits", "(5, 2)", "(5, 1)"],
     lambda m, o: nn.BCEWithLogitsLoss()(m(_ones(5, 3)), np.ones((5, 1)))),
    ("cross_entropy-shape", ValueError, ["cross_entropy", "(4,)", "expected (5,)"],
     lambda m, o: nn.CrossEntropyLoss()(m(_ones(5, 3)), np.zeros(4, np.int64))),
    ("cross_entropy-class-too-big", ValueError, ["cross_entropy", "class 2", "out of range", "2 classes"],
     lambda m, o: nn.CrossEntropyLoss()(m(_ones(5, 3)), np.array([0, 1, 2, 1, 0]))),
    ("cross_entropy-negative-class", ValueError, ["cross_entropy", "class -1", "out of range"],
     lambda m, o: nn.CrossEntropyLoss()(m(_ones(5, 3)), np.array([0, 1, -1, 1, 0]))),
    ("cross_entropy-not-2d", ValueError, ["cross_entropy", "(N, C)", "(2, 5, 2)"],
     lambda m, o: nn.CrossEntropyLoss()(m(_ones(2, 5, 3)), np.zeros(2, np.int64))),
    ("loss-reduction", ValueError, ["mse_loss", "reduction", "'avg'"],
     lambda m, o: F.mse_loss(m(_ones(5, 3)), np.ones((5, 2)), reduction="avg")),
    # grads of integers
    ("int-requires-grad", TypeError, ["requires_grad=True", "int64", "floating-point"],
     lambda m, o: Tensor(np.arange(3), requires_grad=True)),
    # backward misuse
    ("backward-non-scalar", ValueError, ["backward()", "size-1", "(5, 2)"], lambda m, o: m(_ones(5, 3)).backward()),
    ("backward-grad-shape", ValueError, ["backward()", "(3,)", "expected (5, 2)"],
     lambda m, o: m(_ones(5, 3)).backward(np.ones(3))),
    ("backward-no-grad", RuntimeError, ["does not require grad"], lambda m, o: _ones(2).sum().backward()),
    # optimizers
    ("optimizer-empty", ValueError, ["Adam", "empty parameter list"], lambda m, o: optim.Adam([])),
    ("optimizer-empty-iterator", ValueError, ["SGD", "empty"], lambda m, o: optim.SGD(iter(()))),
    ("optimizer-empty-group", ValueError, ["empty parameter list"],
     lambda m, o: optim.Adam([{"params": list(m.parameters())}, {"params": []}])),
    ("lr-negative", ValueError, ["Adam", "lr=-0.1", "lr >= 0"], lambda m, o: optim.Adam(m.parameters(), lr=-0.1)),
    ("lr-nan", ValueError, ["SGD", "lr=nan"], lambda m, o: optim.SGD(m.parameters(), lr=float("nan"))),
    ("lr-string", ValueError, ["Adam", "lr='0.1'", "number"], lambda m, o: optim.Adam(m.parameters(), lr="0.1")),
    ("eps-negative", ValueError, ["RMSProp", "eps=-1e-08", "eps >= 0"],
     lambda m, o: optim.RMSProp(m.parameters(), eps=-1e-8)),
    ("beta-one", ValueError, ["Momentum", "beta=1", "0 <= beta < 1"],
     lambda m, o: optim.Momentum(m.parameters(), beta=1)),
    ("betas-out-of-range", ValueError, ["Adam", "betas=(0.9, 1.0)", "[0, 1)"],
     lambda m, o: optim.Adam(m.parameters(), betas=(0.9, 1.0))),
    ("betas-scalar", ValueError, ["AdamW", "betas=0.9", "pair"], lambda m, o: optim.AdamW(m.parameters(), betas=0.9)),
    ("momentum-negative", ValueError, ["SGD", "momentum=-0.5"], lambda m, o: optim.SGD(m.parameters(), momentum=-0.5)),
    ("weight-decay-negative", ValueError, ["Adam", "weight_decay=-1"],
     lambda m, o: optim.Adam(m.parameters(), weight_decay=-1)),
    ("nesterov-without-momentum", ValueError, ["SGD", "nesterov=True", "momentum > 0"],
     lambda m, o: optim.SGD(m.parameters(), nesterov=True)),
    ("group-lr", ValueError, ["Adam", "lr=-1"],
     lambda m, o: optim.Adam([{"params": [m[0].weight]}, {"params": [m[0].bias], "lr": -1}])),
    ("group-unknown-key-in-constructor", ValueError, ["Adam", "unknown hyperparameters", "'momentum'"],
     lambda m, o: optim.Adam([{"params": [m[0].weight]}, {"params": [m[0].bias], "momentum": 0.9}])),
    ("group-not-a-tensor", TypeError, ["Adam", "params must be Tensors", "ndarray", "index 1"],
     lambda m, o: optim.Adam([{"params": [m[0].weight]}, {"params": [m[0].bias, np.ones(2)]}])),
    ("group-not-a-dict", TypeError, ["SGD", "param group must be a dict", "got Parameter"],
     lambda m, o: optim.SGD([{"params": [m[0].weight]}, m[0].bias])),
    ("group-unknown-key", ValueError, ["unknown hyperparameters", "'momentum'"],
     lambda m, o: o.add_param_group({"params": [Tensor(np.ones(2), requires_grad=True)], "momentum": 0.9})),
    ("unknown-backend", ValueError, ["backend 'cuda'", "numpy"],
     lambda m, o: optim.Adam(m.parameters(), backend="cuda")),
    ("param-not-requiring-grad", ValueError, ["parameter 0", "(2,)", "does not require grad"],
     lambda m, o: optim.SGD([Tensor(np.ones(2))])),
    ("param-not-a-tensor", TypeError, ["params must be Tensors", "ndarray"], lambda m, o: optim.SGD([np.ones(2)])),
    # a tensor given twice
    ("duplicate-param", ValueError, ["appears twice", "(4, 3)"],
     lambda m, o: optim.Adam([m[0].weight, m[0].bias, m[0].weight])),
    ("duplicate-across-groups", ValueError, ["appears twice"],
     lambda m, o: optim.Adam([{"params": [m[0].weight]}, {"params": [m[0].weight]}])),
    ("add-group-already-present", ValueError, ["appears twice", "(2, 4)"],
     lambda m, o: o.add_param_group({"params": [m[2].weight]})),
    # module.load_state_dict (strict)
    ("load-missing-key", nn.StateDictError, ["missing keys ['2.bias']", "Sequential"],
     lambda m, o: m.load_state_dict({k: v for k, v in m.state_dict().items() if k != "2.bias"})),
    ("load-unexpected-key", nn.StateDictError, ["unexpected keys ['3.weight']"],
     lambda m, o: m.load_state_dict({**m.state_dict(), "3.weight": np.zeros(2)})),
    ("load-wrong-shape", nn.StateDictError, ["2.weight", "(4, 2)", "(2, 4)"],
     lambda m, o: m.load_state_dict({**{k: v + 1 for k, v in m.state_dict().items()}, "2.weight": np.zeros((4, 2))})),
    ("load-non-numeric", nn.StateDictError, ["0.bias", "dtype"],
     lambda m, o: m.load_state_dict({**{k: v + 1 for k, v in m.state_dict().items()}, "0.bias": np.array(["a"] * 4)})),
    ("load-complex", nn.StateDictError, ["2.weight", "complex128", "real numbers"],  # would drop the imaginary part
     lambda m, o: m.load_state_dict({**{k: v + 1 for k, v in m.state_dict().items()},
                                     "2.weight": np.ones((2, 4)) + 1j})),
    # optimizer.load_state_dict
    ("opt-load-not-a-dict", ValueError, ["Adam.load_state_dict", "'state' and 'param_groups'"],
     lambda m, o: o.load_state_dict([1, 2])),
    ("opt-load-group-count", ValueError, ["2 param groups", "this optimizer has 1"],
     lambda m, o: o.load_state_dict({**o.state_dict(), "param_groups": o.state_dict()["param_groups"] * 2})),
    ("opt-load-param-count", ValueError, ["param group 0", "3 parameters in the state dict, 4 here"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["param_groups"][0].update(params=[0, 1, 2])))),
    ("opt-load-unknown-key", ValueError, ["param group 0", "unknown keys ['momentum']"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["param_groups"][0].update(momentum=0.9)))),
    ("opt-load-bad-hyper", ValueError, ["Adam", "lr=-5"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["param_groups"][0].update(lr=-5)))),
    ("opt-load-index", ValueError, ["parameter 7", "4 parameters"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["state"].update({7: sd["state"][0]})))),
    ("opt-load-state-keys", ValueError, ["parameter 1", "keys", "exp_avg_sq"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["state"][1].pop("exp_avg_sq")))),
    ("opt-load-state-shape", ValueError, ["exp_avg of parameter 2", "(3,)", "expected (2, 4)"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["state"][2].update(exp_avg=np.zeros(3))))),
    ("opt-load-state-dtype", ValueError, ["exp_avg of parameter 3", "dtype"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["state"][3].update(exp_avg=np.array(["x", "y"]))))),
    ("opt-load-step", ValueError, ["parameter 0", "step -1"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd["state"][0].update(step=-1)))),
    ("opt-load-skipped-steps", ValueError, ["skipped_steps", "'3'"],
     lambda m, o: o.load_state_dict(_edit(o, lambda sd: sd.update(skipped_steps="3")))),
    # DataLoader
    ("loader-lengths", ValueError, ["DataLoader", "5 rows", "y has 4"],
     lambda m, o: data.DataLoader(np.ones((5, 2)), np.ones(4))),
    ("loader-batch-zero", ValueError, ["DataLoader", "batch_size", "got 0"],
     lambda m, o: data.DataLoader(np.ones((5, 2)), batch_size=0)),
    ("loader-batch-negative", ValueError, ["batch_size", "got -3"],
     lambda m, o: data.DataLoader(np.ones((5, 2)), batch_size=-3)),
    ("loader-batch-float", ValueError, ["batch_size", "got 2.5"],
     lambda m, o: data.DataLoader(np.ones((5, 2)), batch_size=2.5)),
    ("loader-missing-file", FileNotFoundError, ["DataLoader", "X file", "nope.npy"],
     lambda m, o: data.DataLoader("nope.npy")),
]


def _edit(opt, change):
    """opt.state_dict() with one deliberate defect; every other part is valid, with values that differ from now."""
    sd = opt.state_dict()
    for entry in sd["state"].values():
        entry["exp_avg"] = entry["exp_avg"] + 1
    change(sd)
    return sd


@pytest.mark.parametrize("error, fragments, action", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error_and_changes_nothing(setup, error, fragments, action):
    model, opt = setup
    before, bindings = _state(model, opt), _bindings(model, opt)
    with pytest.raises(error) as info:
        action(model, opt)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert _state(model, opt) == before
    assert _same_bindings(bindings, _bindings(model, opt)), "a parameter was moved into a new flat buffer"
    # The optimizer still works on the same parameters afterwards.
    opt.step()
    assert _state(model, opt)[0] != before[0]


def test_a_failed_add_param_group_moves_no_parameter_and_adds_no_group(setup):
    model, opt = setup
    other = optim.SGD([Tensor(np.ones(3), requires_grad=True)], lr=0.1)
    before, bindings = _state(model, opt), _bindings(model, opt)
    with pytest.raises(ValueError, match="SGD: invalid learning rate lr=-1"):
        other.add_param_group({"params": [model[0].weight, model[0].bias], "lr": -1})
    with pytest.raises(ValueError, match="parameter 1 of shape \\(2, 4\\) appears twice"):
        other.add_param_group({"params": [model[2].weight, model[2].weight]})
    assert len(other.param_groups) == len(other._buffers) == 1
    assert _state(model, opt) == before
    assert _same_bindings(bindings, _bindings(model, opt))


# An axis or index out of range, in ours and in PyTorch, each on a (2, 3) tensor that requires grad.
OUT_OF_RANGE = [
    ("sum", lambda t: t.sum(axis=2), lambda t: t.sum(dim=2)),
    ("mean", lambda t: t.mean(axis=-3), lambda t: t.mean(dim=-3)),
    ("max", lambda t: t.max(axis=2), lambda t: t.amax(dim=2)),
    ("min", lambda t: t.min(axis=(0, 2)), lambda t: t.amin(dim=(0, 2))),
    ("softmax", lambda t: t.softmax(axis=2), lambda t: t.softmax(dim=2)),
    ("log_softmax", lambda t: t.log_softmax(axis=-3), lambda t: t.log_softmax(dim=-3)),
    ("transpose", lambda t: t.transpose(0, 2), lambda t: t.permute(0, 2)),
    ("concatenate", lambda t: Tensor.concatenate([t, t], axis=2), lambda t: _torch().cat([t, t], dim=2)),
    ("stack", lambda t: Tensor.stack([t, t], axis=3), lambda t: _torch().stack([t, t], dim=3)),
    ("getitem", lambda t: t[5], lambda t: t[5]),
    ("getitem", lambda t: t[:, np.array([0, 3])], lambda t: t[:, _torch().tensor([0, 3])]),
]


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("op, ours, _", OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_an_axis_or_index_out_of_range_is_an_index_error_named_by_the_op_and_records_no_node(monkeypatch, op, ours, _):
    recorded = []
    monkeypatch.setattr(tinygrad_lite._tensor, "_creation_observer", lambda out, ctx: recorded.append(ctx.name))
    with pytest.raises(IndexError, match=f"^{op}: ") as info:
        ours(_ones(2, 3, grad=True))
    assert "(2, 3)" in str(info.value)
    assert recorded == [], "a node was recorded before the check"
    # An axis error is also a ValueError, as numpy's AxisError was, so `except ValueError` still catches it.
    assert isinstance(info.value, ValueError) == (op != "getitem")


@pytest.mark.parametrize("op, _, theirs", OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_pytorch_raises_an_index_error_for_the_same_calls(op, _, theirs):
    torch = _torch()
    with pytest.raises(IndexError):
        theirs(torch.ones(2, 3, requires_grad=True))


def test_backward_through_a_freed_graph_raises_and_changes_no_grad(setup):
    model, opt = setup
    loss = nn.CrossEntropyLoss()(model(_ones(5, 3)), np.zeros(5, np.int64))
    loss.backward()
    before = _state(model, opt)
    with pytest.raises(RuntimeError, match="a second time.*retain_graph=True"):
        loss.backward()
    assert _state(model, opt) == before


def test_a_failed_load_of_a_checkpoint_changes_nothing(setup, tmp_path):
    model, opt = setup
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"not a checkpoint at all")
    before = _state(model, opt)
    with pytest.raises(checkpoint.CheckpointError, match="c.safetensors"):
        checkpoint.load(path, model, opt)
    assert _state(model, opt) == before


# ---- the command line: one line on stderr, exit status 2, no traceback --------------------------


def _bad_files(tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    tinygrad_lite.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3))
    checkpoint.save(truncated, model)
    truncated.write_bytes(truncated.read_bytes()[:-7])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return truncated, garbage, a_file


CLI_CASES = [
    ([], "required"),
    (["fly"], "invalid choice"),
    (["train", "--bogus"], "unrecognized arguments"),
    (["train", "--epochs", "0"], "positive integer"),
    (["train", "--epochs", "ten"], "'ten'"),
    (["train", "--batch-size", "0"], "positive integer"),
    (["train", "--hidden", "4,-1"], "layer sizes"),
    (["train", "--hidden", "a,b"], "64,64"),
    (["train", "--lr", "-1"], "--lr must be >= 0"),
    (["train", "--lr", "fast"], "expected a number"),
    (["train", "--dataset", "mnist"], "invalid choice"),
    (["train", "--optimizer", "lbfgs"], "unknown optimizer 'lbfgs', expected one of"),
    (["train", "--backend", "cuda"], "invalid choice"),
    (["train", "--seed", "-3"], "seed"),
    (["train", "--samples", "0"], "positive integer"),
    (["train", "--save-every", "0"], "positive integer"),
    (["train", "--resume", "{tmp}/missing.safetensors"], "does not exist"),
    (["train", "--resume", "{tmp}/truncated.safetensors"], "truncated or corrupted"),
    (["train", "--resume", "{tmp}/garbage.safetensors"], "garbage.safetensors"),
    (["train", "--out", "{tmp}/a_file", "--epochs", "1"], "a_file"),
]


@pytest.mark.parametrize("argv, fragment", CLI_CASES, ids=[" ".join(a) or "nothing" for a, _ in CLI_CASES])
def test_cli_bad_input_is_one_stderr_line_and_status_2(tmp_path, capsys, argv, fragment):
    _bad_files(tmp_path)
    argv = [a.format(tmp=tmp_path) for a in argv]
    status = cli.main([*argv, "--no-progress"] if argv and argv[0] == "train" else argv)
    out, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and err.strip(), err
    assert fragment in err and "Traceback" not in err
    assert out == ""


def test_cli_resume_from_a_checkpoint_of_other_settings_names_them(tmp_path, capsys):
    assert cli.main(["train", "--epochs", "1", "--samples", "30", "--hidden", "4", "--out", str(tmp_path),
                     "--no-progress"]) == 0
    capsys.readouterr()
    status = cli.main(["train", "--resume", str(tmp_path / "checkpoint.safetensors"), "--no-progress", "--out", ""])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "samples 30 there, 300 here" in err and "hidden [4] there, [64, 64] here" in err


@pytest.mark.parametrize("argv", [["train", "--epochs", "-2"], ["train", "--resume", "missing.safetensors"]])
def test_the_real_command_prints_one_line_and_exits_2(tmp_path, argv):
    result = subprocess.run([sys.executable, "-m", "tinygrad_lite", *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
