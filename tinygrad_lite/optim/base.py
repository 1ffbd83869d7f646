"""`Optimizer`: param groups, flat buffers, backend dispatch and state dicts, shared by every rule.

Each param group's parameters of one dtype live in one contiguous buffer (`_FlatChunk`), and so
do their grads and optimizer state, with the tensors' `.data` and `.grad` as views into them.
A step is then one call of the update rule over the whole buffer, whichever backend runs it.
"""

from __future__ import annotations

import functools
import importlib
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinygrad_lite._tensor import Tensor, _FlatLink, enable_grad

BACKENDS = ("numpy", "numba")
DEFAULT_BACKEND = "numba"


def implementation(rule: str, backend: str) -> Callable[..., None]:
    """The function that applies update `rule` for `backend`: the numpy reference or the fused kernel."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}, expected one of {BACKENDS}")
    # Imported on first use, so `import tinygrad_lite` neither loads Numba's compiler nor compiles.
    module = importlib.import_module("tinygrad_lite.optim." + ("functional" if backend == "numpy" else "kernels"))
    return getattr(module, rule)


def _bound(rule: str, backend: str, arrays: list[np.ndarray]) -> Callable[..., None]:
    """`rule` with its array arguments fixed to one flat chunk's buffers; called with the rule's scalars."""
    if backend == "numba":
        from tinygrad_lite.optim import kernels

        return kernels.bind(rule, arrays)  # resolves the compiled kernel once instead of on every call
    return functools.partial(implementation(rule, backend), *arrays)


def set_num_threads(n: int) -> None:
    """Threads for the parallel Numba kernels; the default is NUMBA_NUM_THREADS, else the core count.

    Like `torch.set_num_threads`, but only for the optimizer kernels (numpy's BLAS keeps its own).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an int >= 1, got {n!r}")
    from tinygrad_lite.optim import kernels

    kernels.set_num_threads(n)


class _FlatChunk:
    """One param group's parameters of one dtype, laid out in contiguous buffers.

    Creating a chunk touches no parameter; `attach()` then moves them in.
    """

    def __init__(self, params: list[Tensor], state_names: tuple[str, ...], rule: str, backend: str) -> None:
        self.params = params
        self.link = _FlatLink()
        dtype = params[0].dtype
        sizes = [p.numel() for p in params]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        total = int(bounds[-1])
        self.param_buf = np.empty(total, dtype)
        self.grad_buf = np.zeros(total, dtype)
        self.state_bufs = {name: np.zeros(total, dtype) for name in state_names}

        def views(buf: np.ndarray) -> list[np.ndarray]:
            return [buf[lo:hi].reshape(p.shape) for p, lo, hi in zip(params, bounds[:-1], bounds[1:])]

        self.param_views = views(self.param_buf)
        self.grad_views = views(self.grad_buf)
        self.state_views = {name: views(buf) for name, buf in self.state_bufs.items()}
        self.step_count = 0  # shared by every parameter while they all step together
        self.per_param_steps: list[int] | None = None  # once a step skipped some parameters
        arrays = [self.param_buf, self.grad_buf, *self.state_bufs.values()]
        self.rule, self.backend = rule, backend
        self.update = _bound(rule, backend, arrays) if rule else None
        self._updates_each: list[Callable[..., None]] | None = None

    def attach(self) -> None:
        """Point every parameter's `.data` and `.grad` at this chunk's views, copying current values in.

        Checks every parameter before it moves any, so a misfit leaves all of them as they were.
        """
        for p, data_view in zip(self.params, self.param_views):
            if p._data is not data_view and (p._data.shape != data_view.shape or p._data.dtype != data_view.dtype):
                raise ValueError(
                    f"a parameter's data changed from shape {data_view.shape} {data_view.dtype} to "
                    f"{p._data.shape} {p._data.dtype} after it was given to the optimizer; its state "
                    "no longer fits (create a new optimizer for the new parameters)"
                )
        for p, data_view, grad_view in zip(self.params, self.param_views, self.grad_views):
            if p._data is not data_view:
                np.copyto(data_view, p._data)
                p._data = data_view
            if p._flat_link is not None and p._flat_link is not self.link:
                p._flat_link.stale = True  # another optimizer held it; that one re-attaches on its next step
            grad = p._grad
            if grad is not None and grad is not grad_view:
                np.copyto(grad_view, grad, casting="same_kind")
            p._grad = None if grad is None else grad_view
            p._flat_link, p._grad_view = self.link, grad_view
        self.link.n_grads = sum(p._grad is not None for p in self.params)
        self.link.stale = False

    def all_have_grads(self) -> bool:
        return self.link.n_grads == len(self.params)

    def steps(self) -> list[int]:
        """Each parameter's step count."""
        return list(self.per_param_steps or [self.step_count] * len(self.params))

    def update_each(self, i: int) -> Callable[..., None]:
        """The rule bound to parameter i's views alone, for steps that skip some parameters (bound once)."""
        if self._updates_each is None:
            self._updates_each = [
                _bound(self.rule, self.backend, [pv, gv, *(views[j] for views in self.state_views.values())])
                for j, (pv, gv) in enumerate(zip(self.param_views, self.grad_views))
            ]
        return self._updates_each[i]

    def set_steps(self, steps: list[int]) -> None:
        uniform = len(set(steps)) <= 1
        self.step_count = steps[0] if uniform and steps else 0
        self.per_param_steps = None if uniform else steps


class Optimizer:
    """Base class: holds `param_groups` and per-parameter `state`, and dispatches `step()` to a backend.

    As in PyTorch, except that `state_dict()` returns copies, because the update rules
    modify state in place, and that all state is allocated (as zeros) when a parameter is added.
    """

    rule: str = ""  # name of the update function in functional.py and kernels.py
    state_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any] | None = None, backend: str | None = None,
                 skip_nonfinite: bool = False, **hyperparameters: Any) -> None:
        """`defaults` may be a dict, as PyTorch passes it, or keywords: `Optimizer(params, lr=0.1)`.

        `params` is tensors, (name, tensor) pairs such as `model.named_parameters()`, or param group dicts
        whose "params" are either. As in PyTorch, names go into the group's "param_names" list (and so into
        `state_dict()`); they label parameters in error messages and change nothing else. Names must be
        strings (PyTorch takes any value).
        A subclass either names a `rule` of functional.py/kernels.py or overrides `step()` itself.
        """
        defaults = {**(defaults or {}), **hyperparameters}
        backend = DEFAULT_BACKEND if backend is None else backend
        if self.rule:
            implementation(self.rule, backend)  # an unknown backend fails here, before any parameter moves
        self.backend = backend
        self.defaults = defaults
        self.skip_nonfinite = skip_nonfinite
        self.skipped_steps = 0
        self.param_groups: list[dict[str, Any]] = []
        self._chunks: list[list[_FlatChunk]] = []
        groups = list(params) if not isinstance(params, Tensor) else [params]
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list; pass model.parameters()")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self._validate(defaults)
        seen: set[int] = set()
        checked = [self._checked_group(group, seen) for group in groups]  # every group before any buffer
        self._check_naming(checked)
        self._lay_out(checked)

    # ---- construction --------------------------------------------------------------------------

    def _validate(self, hyper: dict[str, Any]) -> None:
        """Raise ValueError naming any hyperparameter outside its valid range."""
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay", "beta", "momentum", "dampening"):
            if key in hyper and (isinstance(hyper[key], bool) or not isinstance(hyper[key], numbers.Real)):
                raise ValueError(f"{name}: invalid {key}={hyper[key]!r}, expected a number")
        betas = hyper.get("betas", ())
        if not isinstance(betas, (tuple, list)) or not all(isinstance(b, numbers.Real) for b in betas):
            raise ValueError(f"{name}: invalid betas={betas!r}, expected a pair of numbers such as (0.9, 0.999)")
        if "lr" in hyper and not hyper["lr"] >= 0:
            raise ValueError(f"{name}: invalid learning rate lr={hyper['lr']}, expected lr >= 0")
        if "eps" in hyper and not hyper["eps"] >= 0:  # as PyTorch: eps = 0 is allowed, 0/0 = nan on a zero grad
            raise ValueError(f"{name}: invalid eps={hyper['eps']}, expected eps >= 0")
        if "weight_decay" in hyper and not hyper["weight_decay"] >= 0:
            raise ValueError(f"{name}: invalid weight_decay={hyper['weight_decay']}, expected >= 0")
        for key in ("beta", "momentum", "dampening"):
            if key in hyper and not 0 <= hyper[key] < (1 if key == "beta" else float("inf")):
                raise ValueError(f"{name}: invalid {key}={hyper[key]}, expected "
                                 + ("0 <= beta < 1" if key == "beta" else f"{key} >= 0"))
        if "betas" in hyper:
            betas = hyper["betas"]
            if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
                raise ValueError(f"{name}: invalid betas={betas}, expected two values in [0, 1)")

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add parameters with their own hyperparameters (missing ones come from the defaults)."""
        held = {id(p) for g in self.param_groups for p in g["params"]}
        checked = self._checked_group(group, held)
        self._check_naming([*self.param_groups, checked])
        self._lay_out([checked])

    def _check_naming(self, groups: list[dict[str, Any]]) -> None:
        """Either every group has "param_names" or none has, as PyTorch requires."""
        named = ["param_names" in group for group in groups]
        if any(named) and not all(named):
            odd = named.index(not named[0])
            has = ("has no parameter names but group 0 has" if named[0]
                   else "has parameter names but group 0 has none")
            raise ValueError(f"{type(self).__name__}: param group {odd} {has}; pass (name, tensor) pairs to every "
                             "group or to none")

    def _checked_group(self, group: Any, seen: set[int]) -> dict[str, Any]:
        """`group` with its params as a list and the defaults filled in, after every check; changes nothing.

        `seen` holds the ids of parameters already taken (by this optimizer or an earlier group of the
        same call); this group's are added to it, so a tensor in two groups is caught.
        """
        if not isinstance(group, dict):
            raise TypeError(f"{type(self).__name__}: a param group must be a dict with a 'params' entry, "
                            f"got {type(group).__name__}")
        if "params" not in group:
            raise ValueError("add_param_group: the group dict needs a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: a param group has an empty parameter list")
        names, params = self._named(group, params)
        for i, p in enumerate(params):
            label = f"parameter {i}" + ("" if names is None else f" ({names[i]!r})")
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: params must be Tensors, got {type(p).__name__} at index {i}")
            if not p.requires_grad:
                raise ValueError(f"{type(self).__name__}: {label} of shape {p.shape} does not require grad")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: {label} is not a leaf tensor (detach it first)")
            if p.dtype not in (np.float32, np.float64):
                raise ValueError(f"{type(self).__name__}: {label} has dtype {p.dtype}, expected float32 or float64")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: {label} of shape {p.shape} appears twice; "
                                 "a tensor may be in only one param group, once")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "param_names"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown hyperparameters {sorted(unknown)} in param group, "
                             f"expected some of {sorted(self.defaults)}")
        full = {**self.defaults, **group, "params": params}
        if names is not None:
            full["param_names"] = names
        self._validate(full)
        return full

    def _named(self, group: dict[str, Any], params: list[Any]) -> tuple[list[str] | None, list[Any]]:
        """(the parameters' names or None, the parameters without their names).

        Names come from (name, tensor) pairs, else from the group's "param_names" entry (another
        optimizer's param_groups or a state dict have one); pairs win, as in PyTorch.
        """
        where = f"{type(self).__name__}: "
        if any(isinstance(p, tuple) for p in params):
            paired = [isinstance(p, tuple) and len(p) == 2 for p in params]
            if not all(paired):
                raise ValueError(f"{where}params mixes (name, tensor) pairs with other values (index "
                                 f"{paired.index(False)}); name every parameter of a group or none")
            names, params = [name for name, _ in params], [p for _, p in params]
        elif "param_names" in group:
            names = group["param_names"]
            if not isinstance(names, (list, tuple)) or len(names) != len(params):
                raise ValueError(f"{where}param_names must be a list of {len(params)} names, one per parameter, "
                                 f"got {names!r}")
        else:
            return None, params
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise TypeError(f"{where}the name of parameter {i} must be a str, got {type(name).__name__} {name!r}")
        return list(names), params

    def _lay_out(self, groups: list[dict[str, Any]]) -> None:
        """Give each checked group one flat chunk per dtype; parameters move only once every chunk exists."""
        new_chunks = []
        for group in groups:
            by_dtype: dict[np.dtype, list[Tensor]] = {}
            for p in group["params"]:
                by_dtype.setdefault(p.dtype, []).append(p)
            new_chunks.append([_FlatChunk(ps, self.state_names, self.rule, self.backend) for ps in by_dtype.values()])
        for chunks in new_chunks:
            for chunk in chunks:
                chunk.attach()
        self._chunks.extend(new_chunks)
        self.param_groups.extend(groups)

    # ---- the step ------------------------------------------------------------------------------

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        """The keyword arguments of the update rule for a parameter at `step` (1 on the first step)."""
        raise NotImplementedError

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a grad, using its group's hyperparameters.

        `closure` (re-evaluate the model, call backward, return the loss) runs first, under `enable_grad()`
        as in PyTorch, so it works even when `step` is called inside `no_grad()`; `step` returns its loss.
        A subclass that overrides `step` should run its closure the same way.
        """
        if not self.rule:
            raise NotImplementedError(f"{type(self).__name__} names no update rule: set `rule` or override step()")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for chunks in self._chunks:  # all of them first, so a misfit raises before any parameter moves
            for chunk in chunks:
                if chunk.link.stale:
                    chunk.attach()
        if self.skip_nonfinite and not self._grads_finite():
            self.skipped_steps += 1
            return loss
        for group, chunks in zip(self.param_groups, self._chunks):
            for chunk in chunks:
                if chunk.per_param_steps is None and chunk.link.n_grads == len(chunk.params):
                    # The common case: one call over the whole buffer.
                    chunk.step_count += 1
                    chunk.update(**self._hyperparameters(group, chunk.step_count))
                else:
                    self._step_each(group, chunk)
        return loss

    def _grads_finite(self) -> bool:
        for chunks in self._chunks:
            for chunk in chunks:
                grads = [chunk.grad_buf] if chunk.all_have_grads() else [p._grad for p in chunk.params]
                if not all(g is None or np.isfinite(g).all() for g in grads):
                    return False
        return True

    def _step_each(self, group: dict[str, Any], chunk: _FlatChunk) -> None:
        """Some parameters have no grad: update the others one by one, since PyTorch skips them."""
        steps = chunk.steps()
        for i, p in enumerate(chunk.params):
            if p._grad is None:
                continue
            steps[i] += 1
            chunk.update_each(i)(**self._hyperparameters(group, steps[i]))
        chunk.set_steps(steps)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the grads of all parameters: to None (the default, as in PyTorch) or to zeros."""
        for chunks in self._chunks:
            for chunk in chunks:
                for p in chunk.params:
                    if set_to_none:
                        p.grad = None
                    elif p._grad is not None:
                        p._grad[...] = 0

    # ---- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> dict[Tensor, dict[str, Any]]:
        """Per-parameter state: `step` and views of the state arrays (live, not copies)."""
        result: dict[Tensor, dict[str, Any]] = {}
        for chunks in self._chunks:
            for chunk in chunks:
                for i, (p, step) in enumerate(zip(chunk.params, chunk.steps())):
                    entry: dict[str, Any] = {"step": step}
                    entry.update((name, views[i]) for name, views in chunk.state_views.items())
                    result[p] = entry
        return result

    def _locate(self) -> list[tuple[_FlatChunk, int]]:
        """(chunk, index in chunk) for every parameter, in state-dict order (groups, then params)."""
        places = []
        for group, chunks in zip(self.param_groups, self._chunks):
            where = {id(p): (chunk, i) for chunk in chunks for i, p in enumerate(chunk.params)}
            places.extend(where[id(p)] for p in group["params"])
        return places

    def state_dict(self) -> dict[str, Any]:
        """A snapshot: {'state': {index: {'step', arrays...}}, 'param_groups': [...], 'skipped_steps': n}.

        As PyTorch's, with parameters numbered across groups; parameters never stepped are left out, and
        a group built from (name, tensor) pairs keeps its "param_names" (state is still keyed by number).
        `skipped_steps` counts the steps `skip_nonfinite=True` refused (PyTorch has no such entry).
        """
        state = {}
        for index, (chunk, i) in enumerate(self._locate()):
            step = chunk.per_param_steps[i] if chunk.per_param_steps else chunk.step_count
            if step:
                entry: dict[str, Any] = {"step": step}
                entry.update((name, views[i].copy()) for name, views in chunk.state_views.items())
                state[index] = entry
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            hyper = {k: list(v) if k == "param_names" else v for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`; everything is checked before anything changes.

        Parameters are matched by position, never by name (as in PyTorch); saved "param_names" replace a
        group's names, and a group saved without names keeps its own.
        """
        name = type(self).__name__
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'") from None
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved.get("params", ())) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: param group {i} has {len(saved.get('params', ()))} "
                                 f"parameters in the state dict, {len(group['params'])} here")
            unknown = set(saved) - set(group) - {"param_names"}
            if unknown:
                raise ValueError(f"{name}.load_state_dict: param group {i} has unknown keys {sorted(unknown)}")
            if "param_names" in saved:
                self._named(saved, group["params"])  # checks the names only
            self._validate(saved)
        skipped = state_dict.get("skipped_steps", self.skipped_steps)
        if isinstance(skipped, bool) or not isinstance(skipped, (int, np.integer)) or skipped < 0:
            raise ValueError(f"{name}.load_state_dict: skipped_steps is {skipped!r}, expected an int >= 0")
        places = self._locate()
        updates = []
        for index, entry in saved_state.items():
            if not isinstance(index, (int, np.integer)) or not 0 <= index < len(places):
                raise ValueError(f"{name}.load_state_dict: state for parameter {index!r}, but there are "
                                 f"{len(places)} parameters")
            chunk, i = places[index]
            expected = {"step", *self.state_names}
            if set(entry) != expected:
                raise ValueError(f"{name}.load_state_dict: state of parameter {index} has keys {sorted(entry)}, "
                                 f"expected {sorted(expected)}")
            step = entry["step"]
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
                raise ValueError(f"{name}.load_state_dict: parameter {index} has step {step!r}, expected an int >= 0")
            for key in self.state_names:
                value = np.asarray(entry[key])
                if value.shape != chunk.params[i].shape:
                    raise ValueError(f"{name}.load_state_dict: {key} of parameter {index} has shape {value.shape}, "
                                     f"expected {chunk.params[i].shape}")
                if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
                    raise ValueError(f"{name}.load_state_dict: {key} of parameter {index} has dtype {value.dtype}, "
                                     "expected real numbers")
            updates.append((chunk, i, int(step), entry))
        for group, saved in zip(self.param_groups, saved_groups):
            # Lists again: a checkpoint's JSON turns the names into a tuple.
            group.update({k: list(v) if k == "param_names" else v for k, v in saved.items() if k != "params"})
        chunks = {id(chunk): chunk for chunk, _ in places}
        steps = {key: [0] * len(chunk.params) for key, chunk in chunks.items()}
        for chunk in chunks.values():  # parameters absent from the saved state start fresh, as in PyTorch
            for buf in chunk.state_bufs.values():
                buf[...] = 0
        for chunk, i, step, entry in updates:
            steps[id(chunk)][i] = step
            for key, views in chunk.state_views.items():
                np.copyto(views[i], np.asarray(entry[key]), casting="unsafe")
        for key, chunk in chunks.items():
            chunk.set_steps(steps[key])
        self.skipped_steps = int(skipped)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} (backend={self.backend!r})"]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k not in ("params", "param_names"))
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join(lines)
