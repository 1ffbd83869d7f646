"""Module machinery (Parameter, buffers, containers), LayerNorm, BatchNorm1d, Embedding, Flatten, nn.init and
gradient clipping, against PyTorch where importable and finite differences."""

import math

import numpy as np
import pytest

from tinygrad_lite import Tensor, gradcheck, manual_seed, nn, optim
from tinygrad_lite.nn import functional as F

RNG = np.random.default_rng(1)


# ---- module machinery ------------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        self.body = nn.ModuleList([nn.Linear(3, 4), nn.BatchNorm1d(4)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.register_buffer("steps", Tensor(np.zeros((), np.int64)))
        self.register_buffer("scratch", Tensor(np.zeros(2, np.float32)), persistent=False)

    def forward(self, x):
        for layer in self.body:
            x = layer(x)
        return self.heads["a"](x) * self.scale


def test_names_of_parameters_buffers_and_modules_follow_torch():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias",
        "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "steps", "scratch", "body.1.running_mean", "body.1.running_var", "body.1.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "heads", "heads.a", "heads.b"]
    assert [n for n, _ in net.named_children()] == ["body", "heads"]
    assert list(net.state_dict()) == [
        "scale", "steps", "body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias", "body.1.running_mean",
        "body.1.running_var", "body.1.num_batches_tracked", "heads.a.weight", "heads.a.bias", "heads.b.weight",
        "heads.b.bias"]  # the non-persistent buffer stays out
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]


def test_state_dict_matches_torchs_keys_for_the_same_model():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LayerNorm(4), nn.Embedding(5, 4))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.LayerNorm(4),
                                 torch.nn.Embedding(5, 4))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    state["1.num_batches_tracked"] = np.array(7)
    ours.load_state_dict(state)
    assert int(ours[1].num_batches_tracked.item()) == 7
    np.testing.assert_array_equal(ours[3].weight.data, state["3.weight"])


def test_buffers_round_trip_through_a_checkpoint(tmp_path):
    import tinygrad_lite as tl

    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(Tensor(RNG.normal(size=(8, 3)).astype(np.float32)))
    tl.save(tmp_path / "m.safetensors", model)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    tl.load(tmp_path / "m.safetensors", fresh)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype
    assert fresh[1].num_batches_tracked.item() == 1


def test_parameter_shares_data_and_stays_a_parameter_when_frozen():
    t = Tensor(np.ones(3, np.float32))
    p = nn.Parameter(t)
    assert p.requires_grad and p.data is t.data and isinstance(p, Tensor)
    net = Net()
    net.requires_grad_(False)
    assert len(list(net.parameters())) == 9 and not any(q.requires_grad for q in net.parameters())
    net.body.requires_grad_()
    assert [q.requires_grad for q in net.parameters()] == [False] + [True] * 4 + [False] * 4
    assert (p * 2).__class__ is Tensor  # ops give plain tensors, as torch


def test_apply_visits_children_first_then_self():
    net = Net()
    order = []
    net.apply(lambda m: order.append(type(m).__name__))
    assert order == ["Linear", "BatchNorm1d", "ModuleList", "Linear", "Linear", "ModuleDict", "Net"]
    net.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert not net.heads["b"].weight.data.any()


def test_containers_behave_like_list_and_dict():
    layers = nn.ModuleList([nn.ReLU()])
    layers.append(nn.Tanh())
    layers += [nn.Sigmoid()]
    layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "ReLU", "Tanh", "Sigmoid"]
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 3
    del layers[0]
    assert type(layers[0]).__name__ == "ReLU"
    with pytest.raises(TypeError, match="ModuleList: expected a Module, got int"):
        layers.append(3)
    heads = nn.ModuleDict([("x", nn.ReLU())])
    heads["y"] = nn.Tanh()
    assert list(heads) == ["x", "y"] and "y" in heads and list(heads.keys()) == ["x", "y"]
    assert heads.pop("x").__class__ is nn.ReLU and len(heads) == 1
    with pytest.raises(KeyError, match="'a.b'"):
        heads["a.b"] = nn.ReLU()
    with pytest.raises(TypeError, match="must be a Module"):
        heads["z"] = 3


def test_register_buffer_errors():
    m = nn.Linear(2, 2)
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("weight", Tensor(np.zeros(2)))
    with pytest.raises(TypeError, match="must be a Tensor or None, got ndarray"):
        m.register_buffer("stats", np.zeros(2))
    with pytest.raises(KeyError, match="without '.'"):
        m.register_buffer("a.b", None)
    m.register_buffer("stats", None)
    assert "stats" not in m.state_dict() and list(m.buffers()) == []


def test_flatten_matches_torch():
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(2, 3, 4, 5))
    for start, end in [(1, -1), (0, -1), (1, 2), (2, 3), (-2, -1), (0, 0)]:
        ours = nn.Flatten(start, end)(Tensor(x))
        theirs = torch.nn.Flatten(start, end)(torch.tensor(x))
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    with pytest.raises(ValueError, match="start_dim=3 comes after end_dim=1"):
        nn.Flatten(3, 1)(Tensor(x))


# ---- LayerNorm, BatchNorm1d, Embedding -----------------------------------------------------------------


def _torch_tensor(torch, x, dtype):
    return torch.tensor(x.astype(dtype), requires_grad=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,normalized", [((4, 6), 6), ((2, 3, 4), (3, 4)), ((5, 3), [3])])
def test_layer_norm_matches_torch(shape, normalized, dtype):
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=shape) * 3 + 1
    ours = nn.LayerNorm(normalized, eps=1e-3, dtype=dtype)
    theirs = torch.nn.LayerNorm(normalized, eps=1e-3, dtype=torch.float32 if dtype == np.float32 else torch.float64)
    weight = RNG.normal(size=ours.weight.shape).astype(dtype)
    ours.weight.data[...] = weight
    ours.bias.data[...] = 0.5
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
        theirs.bias.fill_(0.5)
    t, r = Tensor(x.astype(dtype), requires_grad=True), _torch_tensor(torch, x, dtype)
    out, ref = ours(t), theirs(r)
    upstream = RNG.normal(size=shape)
    (out * upstream.astype(dtype)).sum().backward()
    (ref * torch.tensor(upstream.astype(dtype))).sum().backward()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=tol * 10, atol=tol * 10)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=tol * 10, atol=tol * 10)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=tol * 10, atol=tol * 10)


def test_layer_norm_gradcheck_and_no_affine():
    x = Tensor(RNG.normal(size=(3, 4)), requires_grad=True)
    w, b = Tensor(RNG.normal(size=4), requires_grad=True), Tensor(RNG.normal(size=4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 4, w, b), x, w, b)
    plain = nn.LayerNorm(4, elementwise_affine=False)
    assert list(plain.parameters()) == []
    out = plain(Tensor(RNG.normal(size=(3, 4)).astype(np.float32))).data
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5,\)"):
        nn.LayerNorm(5)(Tensor(np.zeros((3, 4))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
def test_batch_norm_matches_torch_in_training_and_eval(shape, momentum, dtype):
    torch = pytest.importorskip("torch")
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    ours = nn.BatchNorm1d(3, momentum=momentum, dtype=dtype)
    theirs = torch.nn.BatchNorm1d(3, momentum=momentum, dtype=tdtype)
    weight = RNG.normal(size=3).astype(dtype)
    ours.weight.data[...] = weight
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for step in range(3):
        x = RNG.normal(size=shape) * (step + 1) + step
        t, r = Tensor(x.astype(dtype), requires_grad=True), _torch_tensor(torch, x, dtype)
        upstream = RNG.normal(size=shape).astype(dtype)
        (ours(t) * upstream).sum().backward()
        (theirs(r) * torch.tensor(upstream)).sum().backward()
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=tol * 10, atol=tol * 10)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=tol, err_msg=name)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=tol * 10, atol=tol * 10)
    ours.eval()
    theirs.eval()
    x = RNG.normal(size=shape)
    t, r = Tensor(x.astype(dtype), requires_grad=True), _torch_tensor(torch, x, dtype)
    out, ref = ours(t), theirs(r)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol, atol=tol)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=tol, atol=tol)
    assert int(ours.num_batches_tracked.item()) == 3


def test_batch_norm_without_running_stats_or_affine():
    torch = pytest.importorskip("torch")
    ours = nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    theirs = torch.nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    x = RNG.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert ours.state_dict() == {} and list(ours.parameters()) == []


def test_batch_norm_gradcheck_and_errors():
    x = Tensor(RNG.normal(size=(5, 2, 3)), requires_grad=True)
    w, b = Tensor(RNG.normal(size=2), requires_grad=True), Tensor(RNG.normal(size=2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(Tensor(np.zeros((1, 3))))
    assert bn.num_batches_tracked.item() in (0, 1)
    with pytest.raises(ValueError, match=r"\(N, 3\).*\(4, 2\)"):
        bn(Tensor(np.zeros((4, 2))))


def test_embedding_matches_torch_with_padding():
    torch = pytest.importorskip("torch")
    ours = nn.Embedding(6, 3, padding_idx=-2)
    assert ours.padding_idx == 4 and not ours.weight.data[4].any()
    theirs = torch.nn.Embedding(6, 3, padding_idx=4)
    ours.weight.data[4] = 1.0  # a non-zero padding row is still read, and still gets no gradient
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
    idx = np.array([[0, 4, 2], [2, 5, 4]])
    out, ref = ours(idx), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(out.data, ref.detach().numpy())
    upstream = RNG.normal(size=(2, 3, 3)).astype(np.float32)
    (out * upstream).sum().backward()
    (ref * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-6)
    with pytest.raises(IndexError, match="index 6 is out of range for 6 embeddings"):
        ours(np.array([6]))
    with pytest.raises(TypeError, match="integers"):
        ours(np.array([0.5]))


def test_embedding_gradcheck():
    w = Tensor(RNG.normal(size=(4, 2)), requires_grad=True)
    assert gradcheck(lambda w: F.embedding(np.array([[0, 3], [3, 1]]), w), w)  # row 3 twice: both grads add up


# ---- init ------------------------------------------------------------------------------------------


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                        ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        nn.init.calculate_gain("swish")


@pytest.mark.parametrize("name,kwargs,std", [
    ("normal_", {"mean": 1.0, "std": 0.5}, 0.5),
    ("xavier_normal_", {"gain": 2.0}, 2.0 * math.sqrt(2 / (300 + 200))),
    ("kaiming_normal_", {}, math.sqrt(2 / 200)),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "tanh"}, 5 / 3 / math.sqrt(300)),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, math.sqrt(2 / 6) * math.sqrt(3 / 200) / math.sqrt(3)),
    ("xavier_uniform_", {}, math.sqrt(6 / 500) / math.sqrt(3)),
])
def test_random_initialisers_have_torchs_spread_and_follow_manual_seed(name, kwargs, std):
    t = Tensor(np.empty((300, 200), np.float32), requires_grad=True)
    manual_seed(3)
    getattr(nn.init, name)(t, **kwargs)
    np.testing.assert_allclose(t.data.std(), std, rtol=0.03)
    first = t.data.copy()
    manual_seed(3)
    getattr(nn.init, name)(t, **kwargs)
    np.testing.assert_array_equal(t.data, first)


def test_constant_initialisers():
    t = Tensor(np.empty((2, 3)))
    assert nn.init.constant_(t, 0.25) is t and (t.data == 0.25).all()
    nn.init.ones_(t)
    assert (t.data == 1).all()
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_normal_(t, mode="fan_avg")


# ---- gradient clipping -----------------------------------------------------------------------------


def _model_with_grads(dtype=np.float32, scale=10.0):
    manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5, dtype=dtype), nn.ReLU(), nn.Linear(5, 2, dtype=dtype))
    x = Tensor((RNG.normal(size=(4, 3)) * scale).astype(dtype))
    (model(x) ** 2).sum().backward()
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
@pytest.mark.parametrize("flat", [False, True])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype, flat):
    torch = pytest.importorskip("torch")
    model = _model_with_grads(dtype)
    if flat:  # the grads become views into the optimizer's flat buffer
        optim.SGD(model.parameters(), lr=0.0).step()
    grads = [p.grad.copy() for p in model.parameters()]
    tparams = [torch.tensor(g * 0, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g)
    total = nn.utils.clip_grad_norm_(model.parameters(), max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert isinstance(total, Tensor) and total.dtype == dtype and total.shape == ()
    np.testing.assert_allclose(total.item(), ref.item(), rtol=tol)
    for p, tp in zip(model.parameters(), tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=tol, atol=1e-7)


def test_clip_grad_norm_reduces_the_flat_buffer_once(monkeypatch):
    from tinygrad_lite.nn.utils import clip_grad

    model = _model_with_grads()
    optimizer = optim.Adam(model.parameters(), lr=0.0)
    optimizer.step()
    grads = [p.grad for p in model.parameters()]
    assert len(clip_grad._regions(grads)) == 1  # one buffer for the whole group
    assert clip_grad._regions(grads)[0].size == sum(g.size for g in grads)
    assert len(clip_grad._regions(grads[:3])) == 3  # a part of the buffer: one grad at a time
    assert len(clip_grad._regions(grads + grads[:1])) == 5  # a grad listed twice counts twice, as in torch
    reference = math.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    total = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    np.testing.assert_allclose(total.item(), reference, rtol=1e-5)
    np.testing.assert_allclose(math.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads)), 1.0, rtol=1e-5)
    assert model[0].weight.grad is grads[0]  # still the optimizer's views


def test_clip_grad_norm_with_an_empty_parameter_in_the_flat_buffer():
    params = [Tensor(np.full(n, value, np.float32), requires_grad=True) for n, value in [(3, 2.0), (0, 5.0), (4, 1.0)]]
    for p in params:
        p.grad = p.data.copy()
    optim.SGD(params, lr=0.0).step()
    total = nn.utils.clip_grad_norm_(params, 1.0)
    np.testing.assert_allclose(total.item(), 4.0, rtol=1e-6)
    np.testing.assert_allclose(params[0].grad, 0.5, rtol=1e-5)


def test_clip_grad_norm_nonfinite_and_empty():
    torch = pytest.importorskip("torch")
    model = _model_with_grads()
    model[0].weight.grad[0, 0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
    assert np.isinf(model[0].weight.grad[0, 0])  # unchanged by the failed call
    total = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    assert math.isinf(total.item())
    t = torch.tensor([1.0, np.inf], requires_grad=True)
    t.grad = torch.tensor([1.0, np.inf])
    torch.nn.utils.clip_grad_norm_([t], 1.0)
    np.testing.assert_array_equal(model[0].weight.grad[0, [1, 0]], t.grad.numpy())  # [0, nan] both
    assert nn.utils.clip_grad_norm_([Tensor(np.ones(2), requires_grad=True)], 1.0).item() == 0.0
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, norm_type=0)


@pytest.mark.parametrize("flat", [False, True])
def test_clip_grad_value_matches_torch(flat):
    torch = pytest.importorskip("torch")
    model = _model_with_grads()
    if flat:
        optim.SGD(model.parameters(), lr=0.0).step()
    expected = [np.clip(p.grad, -0.3, 0.3) for p in model.parameters()]
    t = torch.tensor(model[0].weight.grad.copy())
    nn.utils.clip_grad_value_(model.parameters(), 0.3, foreach=None)
    for p, e in zip(model.parameters(), expected):
        np.testing.assert_array_equal(p.grad, e)
    t.clamp_(-0.3, 0.3)
    np.testing.assert_array_equal(model[0].weight.grad, t.numpy())


def test_load_of_another_architecture_names_the_keys_but_no_strict_argument(tmp_path):
    import tinygrad_lite as tl

    tl.save(tmp_path / "m.safetensors", nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    with pytest.raises(tl.checkpoint.CheckpointError) as info:
        tl.load(tmp_path / "m.safetensors", nn.Sequential(nn.Linear(3, 4)))
    message = str(info.value)
    assert "1.running_mean" in message and "strict" not in message
    with pytest.raises(nn.StateDictError, match=r"pass strict=False"):
        nn.Sequential(nn.Linear(3, 4)).load_state_dict({"0.weight": np.zeros((4, 3))})
