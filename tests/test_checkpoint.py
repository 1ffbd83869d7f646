"""save/load: safetensors layout, no pickle, atomic writes under SIGKILL, clear errors that change nothing,
and bit-for-bit resumption for Adam and RMSProp on every backend."""

import importlib
import json
import multiprocessing
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.numpy

import tinygrad_lite
from tinygrad_lite import Tensor, checkpoint, data, nn, optim
from tinygrad_lite.checkpoint import CheckpointError
from tinygrad_lite.rng import generator
from tinygrad_lite.train import TrainConfig, train


def _model(seed=0):
    tinygrad_lite.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))


def _trained(optimizer_cls=optim.Adam, steps=3, **kwargs):
    model = _model()
    opt = optimizer_cls(model.parameters(), lr=0.05, **kwargs)
    X, y = data.make_spiral(30, seed=0)
    for _ in range(steps):
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(Tensor(X)), y).backward()
        opt.step()
    return model, opt


def _snapshot(model, opt):
    """Everything load() could change, as comparable plain values."""
    state = opt.state_dict() if opt is not None else None
    return ({k: v.tobytes() for k, v in model.state_dict().items()},
            None if state is None else repr(state["param_groups"]) + repr(state.get("skipped_steps")),
            None if state is None else {i: {k: np.asarray(v).tobytes() for k, v in e.items()}
                                        for i, e in state["state"].items()})


def _backend_or_skip(backend):
    if backend == "numba":
        try:
            importlib.import_module("tinygrad_lite.optim.kernels")
        except ImportError:
            pytest.skip("tinygrad_lite.optim.kernels (the numba backend) is not importable yet")


# ---- layout and round trip ---------------------------------------------------------------------


def test_round_trip_restores_model_optimizer_generator_and_metadata(tmp_path):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, epoch=3, note="spiral", losses=[1.5, 0.25])
    copy = np.random.Generator(np.random.PCG64())
    copy.bit_generator.state = generator().bit_generator.state
    expected_draw = copy.random(4)  # what the global generator gives next, as of the save
    generator().random(100)  # move the global generator on

    fresh = _model(seed=5)
    fresh_opt = optim.Adam(fresh.parameters(), lr=0.5, betas=(0.5, 0.6))
    metadata = checkpoint.load(path, fresh, fresh_opt)

    assert metadata == {"epoch": 3, "note": "spiral", "losses": [1.5, 0.25]}
    assert _snapshot(fresh, fresh_opt) == _snapshot(model, opt)
    assert fresh_opt.param_groups[0]["betas"] == (0.9, 0.999) and fresh_opt.param_groups[0]["lr"] == 0.05
    np.testing.assert_array_equal(generator().random(4), expected_draw)


def test_round_trip_keeps_the_optimizers_param_names_as_a_list(tmp_path):
    model, opt = _trained()
    named = optim.Adam(model.named_parameters(), lr=0.05)
    named.load_state_dict(opt.state_dict())
    checkpoint.save(tmp_path / "c.safetensors", model, named)
    fresh = _model(seed=5)
    fresh_opt = optim.Adam(fresh.parameters(), lr=0.5)  # unnamed: takes the saved names, as PyTorch
    checkpoint.load(tmp_path / "c.safetensors", fresh, fresh_opt)
    assert fresh_opt.param_groups[0]["param_names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert _snapshot(fresh, fresh_opt) == _snapshot(model, named)


def test_file_layout_names_and_header(tmp_path):
    model, opt = _trained(optim.RMSProp)
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, epoch=7)
    tensors = safetensors.numpy.load_file(path)
    names = set(model.state_dict())
    assert names == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert set(tensors) == names | {f"optim.state.{i}.square_avg" for i in range(4)}
    np.testing.assert_array_equal(tensors["optim.state.1.square_avg"], opt.state[model[0].bias]["square_avg"])
    with open(path, "rb") as f:
        header = json.loads(f.read(8 + int.from_bytes(open(path, "rb").read(8), "little"))[8:])
    meta = header["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values())
    info = json.loads(meta["tinygrad_lite.optimizer"])
    assert info["class"] == "RMSProp" and info["steps"] == {"0": 3, "1": 3, "2": 3, "3": 3}
    assert info["param_groups"][0]["lr"] == 0.05 and info["param_groups"][0]["beta"] == 0.99
    assert json.loads(meta["epoch"]) == 7


def test_pytorch_reads_the_weights(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch

    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt)
    loaded = safetensors.torch.load_file(str(path))
    reference = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    reference.load_state_dict({k: v for k, v in loaded.items() if not k.startswith("optim.")})
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(Tensor(x)).data, expected, rtol=1e-6, atol=1e-6)


def test_load_never_unpickles(tmp_path, monkeypatch):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, epoch=1)

    def refuse(*args, **kwargs):
        raise AssertionError("load() unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    fresh = _model(seed=3)
    checkpoint.load(path, fresh, optim.Adam(fresh.parameters()))
    assert _snapshot(fresh, None)[0] == _snapshot(model, None)[0]


# ---- atomic writes -----------------------------------------------------------------------------


def test_save_leaves_no_temporary_file_and_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, epoch=1)
    assert os.listdir(tmp_path) == ["c.safetensors"]
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(path, model, opt, epoch=2)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.safetensors"]


def _dead_pid():
    """The pid of a process that has exited and been reaped, so no process has it (unless the OS reuses it)."""
    if os.name != "posix":
        pytest.skip("only POSIX can check a pid without touching the process")
    pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return int(pid)
    pytest.skip(f"pid {pid} was reused at once")


def test_save_removes_temporary_files_of_killed_saves_and_nothing_else(tmp_path):
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        leftover = f".c.safetensors.{dead}.0123abcd.tmp"
        kept = [
            f".c.safetensors.{sleeper.pid}.89abcdef.tmp",  # a save in progress in another process
            f".c.safetensors.{os.getpid()}.deadbeef.tmp",  # one in this process (another thread)
            f".d.safetensors.{dead}.0123abcd.tmp",  # another target's
            f".c.safetensors.{dead}.tmp", f".c.safetensors.{dead}.0123abcd.tmp.bak",  # not the temp-file format
            f".c.safetensors.{dead}.0123ABCD.tmp", f"c.safetensors.{dead}.0123abcd.tmp",
            "notes.txt",
        ]
        for name in [leftover, *kept]:
            (tmp_path / name).write_bytes(b"partial")
        checkpoint.save(tmp_path / "c.safetensors", _model())
        assert sorted(os.listdir(tmp_path)) == sorted([*kept, "c.safetensors"])
        assert all((tmp_path / name).read_bytes() == b"partial" for name in kept)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_save_leaves_a_locked_temporary_file_whose_pid_means_nothing_here(tmp_path):
    # A writer in another PID namespace (a container writing into a shared folder) names its file with a pid
    # that no process here has; the lock it holds until its rename is what keeps its file alive.
    leftover = tmp_path / f".c.safetensors.{_dead_pid()}.0123abcd.tmp"
    leftover.write_bytes(b"partial")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'rb'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)", str(leftover)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        checkpoint.save(tmp_path / "c.safetensors", _model())
        assert leftover.read_bytes() == b"partial"
    finally:
        holder.kill()
        holder.wait()
    checkpoint.save(tmp_path / "c.safetensors", _model())  # the writer is gone and its lock with it
    assert os.listdir(tmp_path) == ["c.safetensors"]


def test_save_works_on_a_file_system_without_flock(tmp_path, monkeypatch):
    if not checkpoint._CAN_CHECK_PIDS:
        pytest.skip("flock is POSIX only")

    def no_flock(fd, operation):
        raise OSError(38, "Function not implemented")  # what Lustre and some FUSE mounts return

    monkeypatch.setattr(checkpoint.fcntl, "flock", no_flock)
    model = _model()
    checkpoint.save(tmp_path / "c.safetensors", model)
    checkpoint.load(tmp_path / "c.safetensors", model)
    assert os.listdir(tmp_path) == ["c.safetensors"]


def test_save_leaves_temporary_files_alone_where_it_cannot_check_a_pid(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "_CAN_CHECK_PIDS", False)
    leftover = f".c.safetensors.{_dead_pid()}.0123abcd.tmp"
    (tmp_path / leftover).write_bytes(b"partial")
    checkpoint.save(tmp_path / "c.safetensors", _model())
    assert sorted(os.listdir(tmp_path)) == sorted([leftover, "c.safetensors"])


def test_save_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        checkpoint.save(tmp_path / "nope" / "c.safetensors", _model())


def _writer(path, conn, first):
    """Child process: save checkpoints whose weights all equal k, k = first, first+1, ...; report each."""
    model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
    opt = optim.Momentum(model.parameters(), backend="numpy")  # this test is about files, not kernels
    k = first
    while True:
        for p in model.parameters():
            p.data[...] = k
        checkpoint.save(path, model, opt, k=k)
        conn.send(k)
        k += 1


def test_a_writer_killed_at_random_moments_never_damages_the_previous_checkpoint(tmp_path):
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    path = str(tmp_path / "c.safetensors")
    reader = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
    reader_opt = optim.Momentum(reader.parameters(), backend="numpy")
    start = time.perf_counter()
    checkpoint.save(path, reader, reader_opt, k=-1)
    save_seconds = time.perf_counter() - start
    chooser = random.Random(0)
    killed_mid_save = 0
    for trial in range(30):
        receive, send = context.Pipe(duplex=False)
        writer = context.Process(target=_writer, args=(path, send, 1000 * trial), daemon=True)
        writer.start()
        assert receive.poll(30), "the writer never completed a save"
        reported = receive.recv()  # only now does the random delay start, so a file always exists
        time.sleep(chooser.uniform(0, 3 * save_seconds))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
        while receive.poll(0):
            reported = receive.recv()
        receive.close()
        send.close()
        killed_mid_save += any(name.endswith(".tmp") for name in os.listdir(tmp_path))
        k = checkpoint.load(path, reader, reader_opt)["k"]
        # The last reported save, or the one whose rename landed just before the kill: whole either way.
        assert reported <= k <= reported + 1
        for p in reader.parameters():
            assert np.all(p.data == k)
        # No clean-up here: join() reaped the writer, so the next writer's first save removes its temporary
        # file, and each count above sees only the file of the writer just killed.
    assert killed_mid_save >= 3, f"only {killed_mid_save} of 30 kills hit a save in progress; the test proves little"
    if os.name == "posix":  # the real writers' temporary files are recognised and removed by the next save
        checkpoint.save(path, reader, reader_opt, k=-2)
        assert os.listdir(tmp_path) == ["c.safetensors"]


# ---- damaged files and files that do not fit ---------------------------------------------------


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -100, -1])
def test_a_truncated_file_raises_naming_it_and_changes_nothing(tmp_path, cut):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, epoch=1)
    blob = path.read_bytes()
    path.write_bytes(blob[:cut] if cut >= 0 else blob[:len(blob) + cut])
    target, target_opt = _trained(optim.Adam, steps=1)
    before = _snapshot(target, target_opt)
    rng_before = generator().bit_generator.state
    with pytest.raises(CheckpointError, match="c.safetensors") as info:
        checkpoint.load(path, target, target_opt)
    assert "truncated or corrupted" in str(info.value) or "corrupted" in str(info.value)
    assert _snapshot(target, target_opt) == before
    assert generator().bit_generator.state == rng_before


@pytest.mark.parametrize("where", ["data", "header_value", "header_syntax"])
def test_a_corrupted_file_raises_naming_it_and_changes_nothing(tmp_path, where):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, epoch=1)
    blob = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(blob[:8], "little")
    if where == "data":
        blob[header_end + 5] ^= 0x40  # one flipped bit inside a weight
    elif where == "header_value":
        at = blob.index(b'\\"lr\\": 0.05') + len(b'\\"lr\\": 0.0')
        blob[at:at + 1] = b"6"  # still valid JSON, a different learning rate
    else:
        blob[9] = ord("}")
    path.write_bytes(bytes(blob))
    target, target_opt = _trained(optim.Adam, steps=1)
    before = _snapshot(target, target_opt)
    with pytest.raises(CheckpointError, match="c.safetensors"):
        checkpoint.load(path, target, target_opt)
    assert _snapshot(target, target_opt) == before


def test_a_checkpoint_that_does_not_fit_changes_neither_model_nor_optimizer(tmp_path):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt)

    wider = nn.Sequential(nn.Linear(2, 9), nn.ReLU(), nn.Linear(9, 3))
    wider_opt = optim.Adam(wider.parameters())
    before = _snapshot(wider, wider_opt)
    with pytest.raises(CheckpointError, match="0.weight has shape"):
        checkpoint.load(path, wider, wider_opt)
    assert _snapshot(wider, wider_opt) == before

    target, target_opt = _trained(optim.RMSProp, steps=1)
    before = _snapshot(target, target_opt)
    with pytest.raises(CheckpointError, match="holds Adam state, but the optimizer is RMSProp"):
        checkpoint.load(path, target, target_opt)
    assert _snapshot(target, target_opt) == before

    # The model fits but the optimizer covers other parameters: the model is rolled back.
    target = _model(seed=4)
    partial_opt = optim.Adam(list(target.parameters())[:2])
    before = _snapshot(target, partial_opt)
    with pytest.raises(CheckpointError, match="does not fit"):
        checkpoint.load(path, target, partial_opt)
    assert _snapshot(target, partial_opt) == before

    with pytest.raises(CheckpointError, match="no optimizer state"):
        checkpoint.save(path, model)
        checkpoint.load(path, target, optim.Adam(target.parameters()))


def test_save_rejects_reserved_or_unencodable_metadata(tmp_path):
    with pytest.raises(ValueError, match="reserved prefix"):
        checkpoint.save(tmp_path / "c", _model(), **{"tinygrad_lite.rng": "x"})
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        checkpoint.save(tmp_path / "c", _model(), when=object())
    assert not os.listdir(tmp_path)


# ---- bit-for-bit resumption --------------------------------------------------------------------


def _run(optimizer_cls, backend, epochs, path, stop_after=None, resume=False):
    """A seeded loop with shuffling and dropout from the global generator; checkpoint at `stop_after`."""
    tinygrad_lite.manual_seed(99 if resume else 0)  # a resumed run must get everything from the file
    X, y = data.make_spiral(90, seed=0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    opt = optimizer_cls(model.parameters(), lr=0.01, backend=backend)
    loader = data.DataLoader(X, y, batch_size=16)
    first = checkpoint.load(path, model, opt)["epoch"] if resume else 0
    losses = []
    for epoch in range(first + 1, epochs + 1):
        for xb, yb in loader:
            loss = nn.CrossEntropyLoss()(model(Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if epoch == stop_after:
            checkpoint.save(path, model, opt, epoch=epoch)
            return None
    return _snapshot(model, opt), losses


@pytest.mark.parametrize("backend", optim.BACKENDS)
@pytest.mark.parametrize("optimizer_cls", [optim.Adam, optim.RMSProp])
def test_a_resumed_run_continues_bit_for_bit(tmp_path, optimizer_cls, backend):
    _backend_or_skip(backend)
    path = tmp_path / "c.safetensors"
    straight, straight_losses = _run(optimizer_cls, backend, 5, path)
    _run(optimizer_cls, backend, 5, path, stop_after=2)
    generator().random(17)  # whatever happened in between must not matter
    resumed, resumed_losses = _run(optimizer_cls, backend, 5, path, resume=True)
    assert resumed == straight
    assert resumed_losses == straight_losses[-len(resumed_losses):] and len(resumed_losses) == 3 * 6


@pytest.mark.parametrize("backend", optim.BACKENDS)
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_train_resume_matches_an_uninterrupted_train(tmp_path, optimizer, backend):
    _backend_or_skip(backend)
    common = dict(samples=60, hidden=(8,), optimizer=optimizer, batch_size=16, backend=backend, progress=False)
    straight = train(TrainConfig(epochs=4, out=str(tmp_path / "a"), **common))
    saving = train(TrainConfig(epochs=4, out=str(tmp_path / "b"), save_every=2, **common))  # saves at 2 and 4
    first_half = train(TrainConfig(epochs=2, out=str(tmp_path / "c"), **common))
    resume = str(tmp_path / "c" / "checkpoint.safetensors")
    resumed = train(TrainConfig(epochs=4, out=str(tmp_path / "d"), resume=resume, **common))
    assert _snapshot(resumed.model, resumed.optimizer) == _snapshot(straight.model, straight.optimizer)
    assert _snapshot(saving.model, saving.optimizer) == _snapshot(straight.model, straight.optimizer)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in straight.history]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history] == strip
    assert len(first_half.history) == 2
    assert (tmp_path / "d" / "metrics.csv").read_text().count("\n") == 5  # header + all four epochs


# ---- a DataLoader with its own generator -------------------------------------------------------


def _seeded_run(backend, path, epochs, save_at=None, resume=False, restore_loader=True):
    """Adam over a DataLoader(seed=7); checkpoint (with the loader) after `save_at` epochs, or resume from it."""
    tinygrad_lite.manual_seed(99 if resume else 0)  # a rebuilt run must get everything from the file
    X, y = data.make_spiral(90, seed=0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=0.01, backend=backend)
    loader = data.DataLoader(X, y, batch_size=16, seed=7)
    if resume:
        checkpoint.load(path, model, opt, loader=loader if restore_loader else None)
    for epoch in range(1, epochs + 1):
        for xb, yb in loader:
            loss = nn.CrossEntropyLoss()(model(Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch == save_at:
            checkpoint.save(path, model, opt, loader=loader, epoch=epoch)
    return _snapshot(model, opt)


@pytest.mark.parametrize("backend", optim.BACKENDS)
def test_a_seeded_loader_resumes_bit_for_bit_when_the_checkpoint_carries_it(tmp_path, backend):
    _backend_or_skip(backend)
    path = tmp_path / "c.safetensors"
    reference = _seeded_run(backend, path, epochs=2 + 3, save_at=2)  # 2 epochs, checkpoint, 3 more
    generator().random(17)
    assert _seeded_run(backend, path, epochs=3, resume=True) == reference
    # Without the loader's state the rebuilt loader replays epoch 1's order, so the test can fail.
    assert _seeded_run(backend, path, epochs=3, resume=True, restore_loader=False)[0] != reference[0]


def test_the_loader_state_is_json_in_the_header(tmp_path):
    model, opt = _trained()
    loader = data.DataLoader(np.zeros((10, 2)), seed=3)
    list(loader)
    checkpoint.save(tmp_path / "c.safetensors", model, opt, loader=loader)
    with safetensors.safe_open(tmp_path / "c.safetensors", "numpy") as f:
        assert json.loads(f.metadata()["tinygrad_lite.loader"]) == loader.state_dict()
    assert loader.state_dict()["bit_generator"]["bit_generator"] == "PCG64"
    with pytest.raises(TypeError, match="loader must be a DataLoader, got dict"):
        checkpoint.save(tmp_path / "d.safetensors", model, loader={"epoch": 1})
    with pytest.raises(TypeError, match="load: loader must be a DataLoader, got dict"):
        checkpoint.load(tmp_path / "c.safetensors", model, opt, loader={"epoch": 1})


@pytest.mark.parametrize("saved_seed, target_seed, message", [
    (3, None, "this loader has no seed"),
    (None, 3, "loader without a seed"),
    ("none", 3, "holds no DataLoader state, but a loader was given"),
])
def test_a_loader_state_that_does_not_fit_changes_nothing(tmp_path, saved_seed, target_seed, message):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    saved_loader = None if saved_seed == "none" else data.DataLoader(np.zeros((10, 2)), seed=saved_seed)
    checkpoint.save(path, model, opt, loader=saved_loader)
    target, target_opt = _trained(optim.Adam, steps=1)
    loader = data.DataLoader(np.zeros((10, 2)), seed=target_seed)
    list(loader)
    before, loader_before = _snapshot(target, target_opt), loader.state_dict()
    rng_before = generator().bit_generator.state
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path, target, target_opt, loader=loader)
    assert _snapshot(target, target_opt) == before
    assert loader.state_dict() == loader_before and generator().bit_generator.state == rng_before


def test_a_failing_optimizer_rolls_the_loader_back(tmp_path):
    model, opt = _trained()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, loader=data.DataLoader(np.zeros((10, 2)), seed=3))
    target = _model(seed=4)
    partial_opt = optim.Adam(list(target.parameters())[:2])  # fits the model, not the optimizer state
    loader = data.DataLoader(np.zeros((10, 2)), seed=5)
    loader_before = loader.state_dict()
    with pytest.raises(CheckpointError, match="does not fit"):
        checkpoint.load(path, target, partial_opt, loader=loader)
    assert loader.state_dict() == loader_before


# ---- an lr schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "plateau", "step"])
def test_train_with_a_schedule_resumes_exactly(tmp_path, monkeypatch, schedule):
    import shutil

    import tinygrad_lite.train as training

    warmup = 0 if schedule == "plateau" else 4
    common = dict(samples=60, hidden=(8,), batch_size=16, progress=False, epochs=12, schedule=schedule,
                  warmup=warmup, test_fraction=0.25)
    straight = train(TrainConfig(out=str(tmp_path / "a"), **common))
    half = tmp_path / "half.safetensors"
    save_run = training.save_run

    def keep_epoch_6(result, out, settings=None):  # the checkpoint a run stopped after epoch 6 would leave
        save_run(result, out, settings)
        if result.final["epoch"] == 6:
            shutil.copy(os.path.join(out, training.CHECKPOINT), half)

    monkeypatch.setattr(training, "save_run", keep_epoch_6)
    train(TrainConfig(out=str(tmp_path / "b"), save_every=6, **common))
    monkeypatch.setattr(training, "save_run", save_run)
    resumed = train(TrainConfig(out=str(tmp_path / "c"), resume=str(half), **common))
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in straight.history]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history] == strip
    assert _snapshot(resumed.model, resumed.optimizer) == _snapshot(straight.model, straight.optimizer)
    assert resumed.scheduler.state_dict() == straight.scheduler.state_dict()
    assert len({row["loss"] for row in straight.history}) == 12
    with pytest.raises(training.ResumeError, match="schedule_epochs 12 there, 20 here"):
        train(TrainConfig(out=str(tmp_path / "d"), resume=str(half), **{**common, "epochs": 20}))


def test_a_scheduler_is_saved_and_must_match_on_load(tmp_path):
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=2)
    for _ in range(5):
        opt.step()
        scheduler.step()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, opt, scheduler=scheduler)
    fresh_opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fresh = optim.lr_scheduler.StepLR(fresh_opt, step_size=2)
    checkpoint.load(path, model, fresh_opt, scheduler=fresh)
    assert fresh.state_dict() == scheduler.state_dict() and fresh_opt.param_groups[0]["lr"] == pytest.approx(0.001)
    with pytest.raises(CheckpointError, match="holds StepLR state, but the scheduler is ExponentialLR"):
        checkpoint.load(path, model, fresh_opt, scheduler=optim.lr_scheduler.ExponentialLR(fresh_opt, gamma=0.9))
    checkpoint.save(path, model, opt)
    with pytest.raises(CheckpointError, match="no lr scheduler state"):
        checkpoint.load(path, model, fresh_opt, scheduler=fresh)
