"""`save` and `load`: a model, its optimizer and lr schedule, a DataLoader's generator and the global one in one file.

Layout of the file (readable by any safetensors reader, e.g. `safetensors.torch.load_file`):
- the model's tensors under their `state_dict()` names (`0.weight`, `0.bias`, ...);
- the optimizer's state arrays as `optim.state.<param index>.<name>` (`optim.state.0.exp_avg`);
- in the JSON header's `__metadata__` (string values only): `tinygrad_lite.optimizer` (class, step counts,
  param-group hyperparameters, skipped steps), `tinygrad_lite.scheduler` (an lr scheduler's class and
  `state_dict()`, when one is given), `tinygrad_lite.rng` (the global generator's state),
  `tinygrad_lite.loader` (a DataLoader's `state_dict()`, when one is given), the caller's metadata (each value
  JSON-encoded) and `tinygrad_lite.sha256`, a digest of all of the above.

Loading parses JSON and raw arrays only, never pickle. Saving writes a temporary file in the same folder,
fsyncs it and renames it over the target, so a crash leaves either the old file or the new one, whole.
A save killed before its rename leaves its temporary file behind; the next save of the same target
removes it once the process that wrote it has gone (its pid no longer exists and its lock is free).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from tinygrad_lite.data.loader import DataLoader
from tinygrad_lite.nn.module import Module, StateDictError
from tinygrad_lite.optim.base import Optimizer
from tinygrad_lite.optim.lr_scheduler import LRScheduler
from tinygrad_lite.rng import generator

FORMAT_VERSION = "1"
OPTIM_PREFIX = "optim."
_RESERVED = "tinygrad_lite."
_STATE_PREFIX = OPTIM_PREFIX + "state."


class CheckpointError(ValueError):
    """A checkpoint that is truncated, corrupted, or does not fit the model or optimizer it is loaded into."""


def _to_json(value: Any) -> str:
    def plain(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    return json.dumps(value, default=plain, sort_keys=True)


def _digest(tensors: dict[str, np.ndarray], header: dict[str, str]) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes) and every header entry, in sorted order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        array = tensors[name]
        h.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    for key in sorted(header):
        h.update(f"{key}\0{header[key]}\0".encode())
    return h.hexdigest()


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable; not possible on every platform, hence optional."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Only POSIX can ask whether a pid is running without touching the process (Windows' os.kill would end it),
# and only POSIX has the advisory locks a writer holds on its temporary file.
_CAN_CHECK_PIDS = os.name == "posix"
if _CAN_CHECK_PIDS:
    import fcntl


def _process_exists(pid: int) -> bool:
    """Whether a process `pid` exists (running, or a zombie not yet reaped), on POSIX."""
    try:
        os.kill(pid, 0)  # signal 0 checks only that the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # someone else's process (PermissionError), or a pid we cannot ask about: keep its file
    return True


def _writer_alive(path: str, pid: int) -> bool:
    """Whether the save that made temporary file `path` may still run: its lock is held or its pid exists.

    The lock covers writers whose pid means nothing here (another PID namespace, e.g. a container writing
    into a shared folder); the pid covers the instant between a writer creating its file and locking it.
    """
    if _process_exists(pid):
        return True
    try:
        fd = os.open(path, os.O_WRONLY)  # for writing: NFS emulates flock with byte-range locks, which need it
    except OSError:
        return True  # gone already, or not ours to open: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when we close fd; a writer holds it until it ends
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _remove_leftover_temps(folder: str, target: str) -> None:
    """Delete the temporary files of killed saves of `target`; a file whose writer still runs is left alone."""
    if not _CAN_CHECK_PIDS:
        return
    ours = re.compile(re.escape(f".{target}.") + r"(\d+)\.[0-9a-f]{8}\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return  # tidying up must never stop the save itself
    for name in names:
        match = ours.fullmatch(name)
        if match and not _writer_alive(os.path.join(folder, name), int(match.group(1))):
            with contextlib.suppress(OSError):  # another save removed it first, or it is not ours to remove
                os.unlink(os.path.join(folder, name))


def _atomic_write(path: str, blob: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder!r} for checkpoint {path!r} does not exist")
    _remove_leftover_temps(folder, os.path.basename(path))
    # A unique name in the same folder, so the final rename stays on one file system and is atomic; the pid
    # in it and the lock held on it until the rename tell a later save whether this writer still runs.
    temp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if _CAN_CHECK_PIDS:
                with contextlib.suppress(OSError):  # some file systems have no flock; the pid check remains
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # a new file: nobody else can hold it
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
            if _CAN_CHECK_PIDS:
                os.replace(temp, path)  # still open and locked (POSIX renames open files)
        if not _CAN_CHECK_PIDS:
            os.replace(temp, path)  # Windows cannot rename an open file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def save(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None, *,
         loader: DataLoader | None = None, scheduler: LRScheduler | None = None, **metadata: Any) -> None:
    """Write `model`'s parameters, `optimizer`'s and `scheduler`'s state, the generators and `metadata` to `path`.

    The global generator is always saved; `loader`'s own generator (a `DataLoader(seed=...)`) when it is
    given. Metadata values may be anything JSON can encode; `load` returns them decoded. Unlike `torch.save`,
    nothing is pickled, so loading a file cannot run code.
    """
    path = os.fspath(path)
    tensors = model.state_dict()
    clash = [name for name in tensors if name.startswith(OPTIM_PREFIX)]
    if clash:
        raise ValueError(f"save: model parameter names {clash} use the prefix {OPTIM_PREFIX!r} reserved for "
                         "optimizer state")
    header = {_RESERVED + "format": FORMAT_VERSION, _RESERVED + "rng": _to_json(generator().bit_generator.state)}
    if loader is not None:
        if not isinstance(loader, DataLoader):
            raise TypeError(f"save: loader must be a DataLoader, got {type(loader).__name__} (the metadata key "
                            "'loader' is taken by this argument)")
        header[_RESERVED + "loader"] = _to_json(loader.state_dict())
    if optimizer is not None:
        state_dict = optimizer.state_dict()
        steps = {}
        for index, entry in state_dict["state"].items():
            steps[str(index)] = entry["step"]
            for name, value in entry.items():
                if name != "step":
                    tensors[f"{_STATE_PREFIX}{index}.{name}"] = np.ascontiguousarray(value)
        header[_RESERVED + "optimizer"] = _to_json({
            "class": type(optimizer).__name__, "steps": steps, "param_groups": state_dict["param_groups"],
            "skipped_steps": state_dict.get("skipped_steps", 0),
        })
    if scheduler is not None:
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"save: scheduler must be an lr_scheduler, got {type(scheduler).__name__}")
        try:
            header[_RESERVED + "scheduler"] = _to_json({"class": type(scheduler).__name__,
                                                        "state": scheduler.state_dict()})
        except (TypeError, ValueError) as error:
            raise ValueError(f"save: the {type(scheduler).__name__}'s state cannot be stored as JSON "
                             f"({error})") from None
    for key, value in metadata.items():
        if key.startswith(_RESERVED):
            raise ValueError(f"save: metadata key {key!r} uses the reserved prefix {_RESERVED!r}")
        try:
            header[key] = _to_json(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"save: metadata {key}={value!r} cannot be stored as JSON ({error})") from None
    header[_RESERVED + "sha256"] = _digest(tensors, header)
    _atomic_write(path, safetensors.numpy.save(tensors, metadata=header))


def _read(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and `__metadata__` of a checkpoint, verified against its digest."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"load: checkpoint {path!r} does not exist") from None
    try:
        header_size = int.from_bytes(blob[:8], "little")
        if len(blob) < 8 or header_size > len(blob) - 8:
            raise ValueError(f"{len(blob)} bytes, too short for its header")
        metadata = json.loads(blob[8:8 + header_size]).get("__metadata__") or {}
        tensors = safetensors.numpy.load(blob)
    except (ValueError, AttributeError, safetensors.SafetensorError) as error:
        raise CheckpointError(f"load: {path!r} is not a readable safetensors checkpoint (truncated or "
                              f"corrupted?): {error}".replace("\n", " ")) from None
    if metadata.get(_RESERVED + "format") != FORMAT_VERSION:
        raise CheckpointError(f"load: {path!r} is a safetensors file but not a tinygrad_lite checkpoint "
                              f"(format {metadata.get(_RESERVED + 'format')!r}, expected {FORMAT_VERSION!r})")
    stored = metadata.get(_RESERVED + "sha256")
    rest = {k: v for k, v in metadata.items() if k != _RESERVED + "sha256"}
    if stored != _digest(tensors, rest):
        raise CheckpointError(f"load: {path!r} is corrupted: its contents do not match the sha256 digest "
                              "stored when it was saved")
    return tensors, metadata


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata `save` stored in `path` (decoded), after checking the file; changes nothing."""
    path = os.fspath(path)
    _, metadata = _read(path)
    try:
        return {k: json.loads(v) for k, v in metadata.items() if not k.startswith(_RESERVED)}
    except ValueError as error:
        raise CheckpointError(f"load: {path!r} has an invalid metadata entry: {error}") from None


def _saved_info(path: str, metadata: dict[str, str], key: str, label: str, obj: Any) -> dict[str, Any]:
    """The header entry `key` (optimizer or scheduler), after checking it is there and saved from obj's class."""
    if _RESERVED + key not in metadata:
        article = "an" if key[0] in "aeiou" else "a"
        raise CheckpointError(f"load: {path!r} holds no {label} state, but {article} {key} was given")
    info = json.loads(metadata[_RESERVED + key])
    if info["class"] != type(obj).__name__:
        raise CheckpointError(f"load: {path!r} holds {info['class']} state, but the {key} is {type(obj).__name__}")
    return info


def _optimizer_state(path: str, tensors: dict[str, np.ndarray], info: dict[str, Any]) -> dict[str, Any]:
    """Rebuild `Optimizer.state_dict()` from the `optim.` tensors and the header's JSON."""
    state: dict[int, dict[str, Any]] = {int(index): {"step": step} for index, step in info["steps"].items()}
    for name, value in tensors.items():
        index, _, key = name[len(_STATE_PREFIX):].partition(".")
        if not name.startswith(_STATE_PREFIX) or not index.isdigit() or int(index) not in state:
            raise CheckpointError(f"load: {path!r} has optimizer tensor {name!r} without a step count")
        state[int(index)][key] = value
    # JSON turned tuples such as Adam's betas into lists.
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
              for group in info["param_groups"]]
    return {"state": state, "param_groups": groups, "skipped_steps": info.get("skipped_steps", 0)}


def load(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None, *,
         loader: DataLoader | None = None, scheduler: LRScheduler | None = None,
         restore_rng: bool = True) -> dict[str, Any]:
    """Restore `model` (and `optimizer`, `loader` and the global generator) from `save`'s file; returns the metadata.

    The file is read and checked in full (digest, names, shapes, optimizer type, loader state) before
    anything changes, so on any error model, optimizer, loader and generator are left as they were.
    Restoring the generators makes DataLoader shuffling and dropout continue exactly where the saved run
    stood, provided it was saved between epochs (a loader shuffles once per epoch). Create the scheduler
    before loading, as in PyTorch: its constructor writes the lrs that the saved state then replaces.
    """
    path = os.fspath(path)
    if loader is not None and not isinstance(loader, DataLoader):
        raise TypeError(f"load: loader must be a DataLoader, got {type(loader).__name__}")
    tensors, metadata = _read(path)
    before = model.state_dict()
    # The model's own order first (safetensors returns names in no fixed order), so errors name the first misfit.
    names = [name for name in before if name in tensors]
    names += sorted(name for name in tensors if name not in before and not name.startswith(OPTIM_PREFIX))
    model_tensors = {name: tensors[name] for name in names}
    try:
        rng_state = json.loads(metadata[_RESERVED + "rng"])
        bit_generator = type(generator().bit_generator)()
        bit_generator.state = rng_state  # validates it before anything changes
        user = {k: json.loads(v) for k, v in metadata.items() if not k.startswith(_RESERVED)}
        optimizer_state = None
        if optimizer is not None:
            info = _saved_info(path, metadata, "optimizer", "optimizer", optimizer)
            optimizer_state = _optimizer_state(path, {k: v for k, v in tensors.items() if k.startswith(OPTIM_PREFIX)},
                                               info)
        scheduler_state = None
        if scheduler is not None:
            info = _saved_info(path, metadata, "scheduler", "lr scheduler", scheduler)
            scheduler_state = info["state"]
            if not isinstance(scheduler_state, dict):
                raise TypeError(f"scheduler state is {type(scheduler_state).__name__}, expected a dict")
        loader_state = None
        if loader is not None:
            if _RESERVED + "loader" not in metadata:
                raise CheckpointError(f"load: {path!r} holds no DataLoader state, but a loader was given")
            loader_state = json.loads(metadata[_RESERVED + "loader"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"load: {path!r} has an invalid header entry: {error!r}") from None

    loader_before = None if loader is None else loader.state_dict()
    try:
        model.load_state_dict(model_tensors)
        # Each of these checks everything before it changes anything; the ones already done are rolled back.
        if loader_state is not None:
            loader.load_state_dict(loader_state)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
    except (ValueError, RuntimeError) as error:
        model.load_state_dict(before)
        if loader_before is not None:
            loader.load_state_dict(loader_before)
        reason = error.message if isinstance(error, StateDictError) else error  # its hint names another call's args
        raise CheckpointError(f"load: {path!r} does not fit: {reason}") from None
    if scheduler_state is not None:
        scheduler.load_state_dict(scheduler_state)  # after the optimizer, whose param groups hold the lrs
    if restore_rng:
        generator().bit_generator.state = rng_state
    return user
