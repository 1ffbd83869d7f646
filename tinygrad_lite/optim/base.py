"""`Optimizer`: param groups, flat buffers, the step and state dicts, shared by every rule.

Each param group's parameters of one dtype live in one contiguous buffer (`_FlatBuffer`), and so do
their grads and the rule's state record, with the tensors' `.data` and `.grad` as views into them.
A step is then one call of the update rule over the whole buffer, whichever backend runs it.

The tensors know nothing of this. At `step()` the optimizer looks at each parameter, as
`torch.optim.Adam.step` gathers `params_with_grad`: a `.grad` that is its view is already in place,
and a `.grad` that backward or the user put elsewhere, or a `.data` the user rebound, is copied in
and rebound to its view. After `zero_grad(set_to_none=False)` backward adds into the views in place
and the step has nothing to copy. Nor anything to look at: when the engine's `rebind_epoch` is what it
was the last time every parameter's `.data` and `.grad` were their views, no tensor's array has been
replaced since, and the step skips the per-parameter check (on 200 tensors it cost 14 us a step).
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from tinygrad_lite import _tensor
from tinygrad_lite._tensor import Tensor, enable_grad
from tinygrad_lite.optim import lowbit

BACKENDS = ("numpy", "numba")
DEFAULT_BACKEND = "numba"
# What lr_scheduler writes into param groups besides the hyperparameters; a state dict may carry them.
SCHEDULE_KEYS = frozenset({"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"})


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}, expected one of {BACKENDS}")


def implementation(rule: str, backend: str) -> Callable[..., None]:
    """The public function that applies update `rule` for `backend`: the numpy reference or the fused kernel."""
    _check_backend(backend)
    if backend == "numpy":
        from tinygrad_lite.optim import functional

        return getattr(functional, rule)
    from tinygrad_lite.optim import kernels  # Numba loads only for the numba backend

    return getattr(kernels, rule)


def bind(rule: str, backend: str, arrays: list[np.ndarray]) -> Callable[..., None]:
    """`rule` on fixed `arrays` (param, grad, state...) for `backend`; called with the rule's keyword scalars.

    The one place a backend is chosen. The numba rules in kernels.py are themselves `kernels.bind(...)(...)`,
    so the optimizer and the public functions run the same path; binding once spares a step the checks.
    """
    _check_backend(backend)
    if backend == "numba":
        # Imported on first use, so `import tinygrad_lite` neither loads Numba's compiler nor compiles.
        from tinygrad_lite.optim import kernels

        return kernels.bind(rule, arrays)
    from tinygrad_lite.optim import functional

    return functools.partial(getattr(functional, rule), *arrays)


def bind_lowbit(rule: str, state_dtype: str, backend: str, arrays: list[np.ndarray],
                block_size: int = lowbit.BLOCK_SIZE) -> Callable[..., None]:
    """As `bind`, for a rule whose state is stored as `state_dtype` ("bfloat16" or "int8", see lowbit.py)."""
    _check_backend(backend)
    if backend == "numba":
        from tinygrad_lite.optim import kernels

        return kernels.bind_lowbit(rule, state_dtype, arrays, block_size)
    extra = {"block_size": block_size} if state_dtype == "int8" else {}
    return functools.partial(getattr(lowbit, f"{rule}_{state_dtype}"), *arrays, **extra)


def set_num_threads(n: int) -> None:
    """Threads for the parallel Numba kernels; the default is NUMBA_NUM_THREADS, else the core count.

    Like `torch.set_num_threads`, but only for the optimizer kernels (numpy's BLAS keeps its own).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an int >= 1, got {n!r}")
    from tinygrad_lite.optim import kernels

    kernels.set_num_threads(n)


def check_hyperparameter(optimizer: str, key: str, value: Any, valid: Callable[[float], bool], expected: str) -> None:
    """Raise ValueError naming `optimizer` and `key` unless `value` is a real number (not a bool) that is `valid`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{optimizer}: invalid {key}={value!r}, expected a number")
    if not valid(value):
        raise ValueError(f"{optimizer}: invalid {key}={value}, expected {expected}")


def check_lr(optimizer: str, lr: Any) -> None:
    """A learning rate is a finite number >= 0."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise ValueError(f"{optimizer}: invalid learning rate lr={lr!r}, expected a number")
    if not 0 <= lr < math.inf:
        raise ValueError(f"{optimizer}: invalid learning rate lr={lr}, expected a finite lr >= 0")


def check_betas(optimizer: str, betas: Any) -> None:
    """A pair of numbers in [0, 1)."""
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in betas)):
        raise ValueError(f"{optimizer}: invalid betas={betas!r}, expected a pair of numbers such as (0.9, 0.999)")
    if not all(0 <= b < 1 for b in betas):
        raise ValueError(f"{optimizer}: invalid betas={betas}, expected two values in [0, 1)")


def _views(buf: np.ndarray, params: list[Tensor], bounds: np.ndarray) -> list[np.ndarray]:
    """`buf` cut into one view per parameter, shaped like it."""
    return [buf[lo:hi].reshape(p.shape) for p, lo, hi in zip(params, bounds[:-1], bounds[1:])]


class _Layout:
    """Where some parameters of one dtype and their grads live: two contiguous buffers and a view per parameter.

    Optimizers over the same parameters in the same order share one layout (`_layout_of`), so stepping
    them in turn moves no values from one buffer to another.
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.bounds = np.concatenate([[0], np.cumsum([p.data.size for p in params])]).astype(int)
        self.param_buf = np.empty(int(self.bounds[-1]), params[0].dtype)
        self.grad_buf = np.zeros_like(self.param_buf)
        self.param_views = _views(self.param_buf, params, self.bounds)
        self.grad_views = _views(self.grad_buf, params, self.bounds)
        for data, view in zip([p.data for p in params], self.param_views):
            view[...] = data  # the values, for a state `init` that reads them; the tensors move in later


_FORMAT_KEYS = ("state_dtype", "block_size", "lowbit_min_size")  # how a group's state is stored (lowbit.py)
_layouts: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # (ids of the params) -> _Layout


def _layout_of(params: list[Tensor]) -> _Layout:
    """The layout of these parameters, shared with any live optimizer that holds the same ones in the same order.

    Not shared when a parameter's `.data` has since been rebound to another shape or dtype: the older
    optimizer no longer fits (its next step says so), and the new one gets a layout of its own.
    """
    key = tuple(map(id, params))  # unique while the layout, which holds the tensors, lives
    layout = _layouts.get(key)
    if layout is None or not all(map(_fits, params, layout.param_views)):
        layout = _layouts[key] = _Layout(params)
    return layout


def _fits(p: Tensor, view: np.ndarray) -> bool:
    """Whether a parameter's `.data` (perhaps rebound) still has its view's shape and dtype."""
    return p._data.shape == view.shape and p._data.dtype == view.dtype


def _check_fit(p: Tensor, view: np.ndarray) -> None:
    """Raise if a parameter's rebound `.data` no longer has its view's shape and dtype."""
    if not _fits(p, view):
        data = p._data
        raise ValueError(
            f"a parameter's data changed from shape {view.shape} {view.dtype} to {data.shape} {data.dtype} "
            "after it was given to the optimizer; its state no longer fits (create a new optimizer for the "
            "new parameters)"
        )


class _FlatBuffer:
    """One param group's parameters of one dtype: their layout, the rule's state record and a step count each.

    Creating a buffer touches no parameter; `gather()` moves them in.
    """

    def __init__(self, params: list[Tensor], state_type: type[NamedTuple], group: dict[str, Any], rule: str,
                 backend: str) -> None:
        layout = self.layout = _layout_of(params)
        self.params, self.bounds = layout.params, layout.bounds
        self.param_buf, self.grad_buf = layout.param_buf, layout.grad_buf
        self.param_views, self.grad_views = layout.param_views, layout.grad_views
        self.state_type = state_type
        self.state = self.fresh_state(self.param_buf, group)
        self.state_views = {name: self._views_of(buf) for name, buf in zip(self.state._fields, self.state)}
        self._steps = np.zeros(len(params), np.int64)  # each parameter's step count: read it as `steps`
        self.uniform, self.count = True, 0  # all counts equal (to count): a step can be one call over the buffer
        self._filled = 0  # the count `_steps` was last filled with while uniform
        self.rule, self.backend = rule, backend
        self.arrays = [self.param_buf, self.grad_buf, *self.state]
        self.update = self._update = self._bind(self.arrays)
        self.maximize = False
        self.set_maximize(group.get("maximize") is True)

    def set_maximize(self, on: bool) -> None:
        """With `on`, the rule runs on -dW (PyTorch's maximize), read from a buffer of negated grads."""
        if on == self.maximize:
            return
        self.maximize = on
        if not on:
            self.update = self._update
            return
        negated = np.empty_like(self.grad_buf)
        update_negated = self._bind([self.param_buf, negated, *self.state])

        def update(**scalars: Any) -> None:
            np.negative(self.grad_buf, out=negated)
            update_negated(**scalars)

        self.update = update

    def fresh_state(self, param: np.ndarray, group: dict[str, Any]) -> Any:
        """The state record a parameter (or the whole buffer) starts with."""
        return self.state_type.init(param, **group)

    def _views_of(self, buf: np.ndarray) -> list[np.ndarray]:
        return _views(buf, self.params, self.bounds)

    def _bind(self, arrays: list[np.ndarray]) -> Callable[..., None]:
        return bind(self.rule, self.backend, arrays)

    def convert(self, entry: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        """A saved state entry in this buffer's format; `source` is the format it was saved in (`_format`)."""
        names = self.state_type._fields
        if any(np.asarray(entry.get(name)).dtype == np.uint16 or name + lowbit.ABSMAX_SUFFIX in entry
               for name in names if name in entry):
            return {**{k: v for k, v in entry.items() if k == "step"},
                    **lowbit.decode(entry, names, source["block_size"])}
        return entry

    def check_rebound(self) -> None:
        """Raise if a parameter's `.data` was rebound to an array that no longer fits its view; changes nothing."""
        for p, data_view in zip(self.params, self.param_views):
            if p._data is not data_view:
                _check_fit(p, data_view)

    def gather(self) -> list[bool] | None:
        """Bring rebound data and grads kept elsewhere into the buffers; which parameters have a grad (None: all).

        Each copied `.data` or `.grad` is then rebound to its view (same values), so backward and the next
        step find it in place. The views are assigned to the engine's fields directly (they have the
        tensor's shape and dtype by construction, `check_rebound` having run, and the engine stores a grad in
        its tensor's dtype), and the engine is told once, if anything moved. This runs after every
        `zero_grad()`, so it is one plain loop.
        """
        missing = moved = False
        for p, data_view, view in zip(self.params, self.param_views, self.grad_views):
            if p._data is not data_view:
                np.copyto(data_view, p._data)
                p._data = data_view
                moved = True
            grad = p._grad
            if grad is not view:
                if grad is None:
                    missing = True
                    continue
                view[...] = grad
                p._grad = view
                moved = True
        if moved:
            _tensor.note_rebind()
        return [p._grad is not None for p in self.params] if missing else None

    def grads_finite(self, has_grad: list[bool] | None) -> bool:
        if has_grad is None:
            return bool(np.isfinite(self.grad_buf).all())
        return all(np.isfinite(view).all() for view, has in zip(self.grad_views, has_grad) if has)

    def step_some(self, has_grad: list[bool] | None, scalars: Callable[[dict[str, Any], int], dict[str, Any]],
                  group: dict[str, Any]) -> None:
        """Advance every parameter that has a grad by one step, when some have none or their counts differ.

        PyTorch skips a parameter without a grad, so counts can differ; each set of parameters at the same
        count is updated by one call on a gathered copy of their elements. `scalars(group, t)` gives the
        rule's keywords at step t.
        """
        stepping = np.ones(len(self.params), bool) if has_grad is None else np.array(has_grad)
        before = self.steps.copy()
        for count in np.unique(before[stepping]):
            members = np.flatnonzero(stepping & (before == count))
            index = np.concatenate([np.arange(self.bounds[i], self.bounds[i + 1]) for i in members])
            gathered = [buf[index] for buf in self.arrays]
            if self.maximize:
                np.negative(gathered[1], out=gathered[1])
            self._bind(gathered)(**scalars(group, int(count) + 1))
            for i, (buf, values) in enumerate(zip(self.arrays, gathered)):
                if i != 1:  # the grads are the rule's input (negated under maximize): .grad keeps its values
                    buf[index] = values
            self.steps[members] += 1
        self.set_steps(self.steps)

    @property
    def steps(self) -> np.ndarray:
        """Each parameter's step count. While all are equal a step only advances `count`; this fills them in."""
        if self.uniform and self._filled != self.count:
            self._steps.fill(self.count)
            self._filled = self.count
        return self._steps

    def set_steps(self, steps: Any) -> None:
        self._steps[...] = steps
        self.uniform = len(self._steps) == 0 or bool((self._steps == self._steps[0]).all())
        self.count = int(self._steps[0]) if self.uniform and len(self._steps) else 0  # every count, when uniform
        self._filled = self.count


class _LowBitBuffer(_FlatBuffer):
    """A flat buffer whose state is stored as bfloat16 words or block-wise int8 codes (lowbit.py).

    int8 blocks never straddle two parameters, so that each parameter's codes and absmax values are
    its own state: every int8 parameter gets a buffer of its own. bfloat16 buffers hold many.
    """

    def __init__(self, params: list[Tensor], state_type: type[NamedTuple], group: dict[str, Any], rule: str,
                 backend: str, state_dtype: str, block_size: int) -> None:
        self.state_dtype, self.block_size = state_dtype, block_size
        super().__init__(params, state_type, group, rule, backend)

    def fresh_state(self, param: np.ndarray, group: dict[str, Any]) -> Any:
        return lowbit.init(self.state_type, param, self.state_dtype, self.block_size)

    def _views_of(self, buf: np.ndarray) -> list[np.ndarray]:
        return [buf] if buf.size != self.param_buf.size else _views(buf, self.params, self.bounds)  # [buf]: absmax

    def _bind(self, arrays: list[np.ndarray]) -> Callable[..., None]:
        return bind_lowbit(self.rule, self.state_dtype, self.backend, arrays, self.block_size)

    def convert(self, entry: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        names = self.state_type._fields
        if source["state_dtype"] == self.state_dtype and source["block_size"] == self.block_size:
            return entry  # stored state and scales kept exactly
        if not all(name in entry for name in names):
            return entry  # the key check reports what is missing
        moments = lowbit.decode(entry, names, source["block_size"])
        return {"step": entry.get("step"), **lowbit.encode(moments, self.state_dtype, self.block_size)}

    def step_some(self, has_grad: list[bool] | None, scalars: Callable[[dict[str, Any], int], dict[str, Any]],
                  group: dict[str, Any]) -> None:
        if self.state_dtype != "int8":
            return super().step_some(has_grad, scalars, group)
        if has_grad is None or has_grad[0]:  # the buffer's one parameter
            step = int(self.steps[0]) + 1
            self.update(**scalars(group, step))
            self.set_steps([step])


class Optimizer:
    """Base class: holds `param_groups` and per-parameter `state`, and runs `step()` on a backend.

    A subclass names its `rule` (a function of functional.py and kernels.py) and `state_type` (the
    rule's state record), validates its own hyperparameters in `_validate`, and turns a group and a
    step count into the rule's keyword scalars in `_hyperparameters`.

    As in PyTorch, except that `state_dict()` returns copies, because the update rules modify state
    in place; that all state is allocated (by the record's `init`) when a parameter is added; and that
    after `step()` each `.grad` is a view into the optimizer's flat grad buffer (with the same values).
    """

    rule: str = ""  # name of the update function in functional.py and kernels.py; "" if step() is overridden
    state_type: Any = None  # the rule's state record (functional.py)

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any] | None = None, backend: str | None = None,
                 skip_nonfinite: bool = False, *, state_dtype: str = "float32", block_size: int = lowbit.BLOCK_SIZE,
                 lowbit_min_size: int = lowbit.MIN_SIZE, **hyperparameters: Any) -> None:
        """`defaults` may be a dict, as PyTorch passes it, or keywords: `Optimizer(params, lr=0.1)`.

        `params` is tensors, (name, tensor) pairs such as `model.named_parameters()`, or param group dicts
        whose "params" are either. As in PyTorch, names go into the group's "param_names" list (and so into
        `state_dict()`); they label parameters in error messages and change nothing else. Names must be
        strings (PyTorch takes any value).

        `state_dtype="bfloat16"` or `"int8"` stores the rule's state in 16 or 8 bits (lowbit.py; int8 in
        blocks of `block_size` values) for float32 parameters of at least `lowbit_min_size` values; smaller
        parameters, and float64 ones, keep state in their own dtype. Not in PyTorch (bitsandbytes' 8-bit
        optimizers do the same for int8).
        """
        defaults = {**(defaults or {}), **hyperparameters}
        backend = DEFAULT_BACKEND if backend is None else backend
        _check_backend(backend)  # before any parameter moves
        self._check_state_format(state_dtype, block_size, lowbit_min_size)
        if state_dtype != "float32":  # in every group, so state_dict() and checkpoints say how state is stored
            defaults.update(state_dtype=state_dtype, block_size=block_size, lowbit_min_size=lowbit_min_size)
        self.backend = backend
        self.defaults = defaults
        self.skip_nonfinite = skip_nonfinite
        self.skipped_steps = 0
        self.param_groups: list[dict[str, Any]] = []
        self._buffers: list[list[_FlatBuffer]] = []  # per param group, one per dtype
        self._pairs: list[tuple[dict[str, Any], _FlatBuffer]] = []  # (group, buffer) for every buffer, in order
        self._checked: list[dict[str, Any]] = []  # each group as last validated, so step() re-checks only changes
        self._in_place_at = -1  # the engine's rebind_epoch when every .data and .grad was last its view
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
        """Raise ValueError naming any hyperparameter of `hyper` outside its valid range; each rule checks its own."""

    def _check_state_format(self, state_dtype: Any, block_size: Any, lowbit_min_size: Any) -> None:
        name = type(self).__name__
        if state_dtype not in lowbit.STATE_DTYPES:
            raise ValueError(f"{name}: invalid state_dtype={state_dtype!r}, expected one of {lowbit.STATE_DTYPES}")
        if state_dtype != "float32" and not hasattr(lowbit, f"{self.rule}_{state_dtype}"):
            raise ValueError(f"{name}: state_dtype={state_dtype!r} is not available for its rule {self.rule!r} "
                             "(low-bit state exists for sgd, momentum, rmsprop, adam and adamw without amsgrad, "
                             "centered or momentum in RMSProp); use state_dtype='float32'")
        for key, value, least in (("block_size", block_size, 1), ("lowbit_min_size", lowbit_min_size, 0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(f"{name}: invalid {key}={value!r}, expected an int >= {least}")

    def _format(self, group: dict[str, Any]) -> dict[str, Any]:
        """How `group`'s state is stored: state_dtype, block_size and lowbit_min_size."""
        return {key: group.get(key, default) for key, default in zip(_FORMAT_KEYS, ("float32", 0, 0))}

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
        if full.get("state_dtype", "float32") != "float32":
            self._check_state_format(*self._format(full).values())
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
        """Give each checked group one flat buffer per dtype; parameters move only once every buffer exists."""
        for group in groups:
            state_dtype, block_size, min_size = self._format(group).values()
            # float32 parameters big enough keep low-bit state: bfloat16 in one buffer, int8 one buffer each
            by_kind: dict[Any, list[Tensor]] = {}
            for p in group["params"]:
                low = state_dtype != "float32" and p.dtype == np.float32 and p.data.size >= min_size
                kind = (state_dtype, id(p) if state_dtype == "int8" else None) if low else p.dtype
                by_kind.setdefault(kind, []).append(p)
            self._buffers.append([
                _LowBitBuffer(ps, self.state_type, group, self.rule, self.backend, state_dtype, block_size)
                if isinstance(kind, tuple) else _FlatBuffer(ps, self.state_type, group, self.rule, self.backend)
                for kind, ps in by_kind.items()] if self.rule else [])
        for buffers in self._buffers[len(self.param_groups):]:
            for buffer in buffers:
                buffer.gather()
        self.param_groups.extend(groups)
        self._checked.extend(dict(group) for group in groups)
        self._pairs = [(group, buffer) for group, buffers in zip(self.param_groups, self._buffers)
                       for buffer in buffers]

    # ---- the step ------------------------------------------------------------------------------

    def _hyperparameters(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        """The keyword arguments of the update rule for a parameter at `step` (1 on the first step)."""
        raise NotImplementedError

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a grad, using its group's hyperparameters.

        `closure` (re-evaluate the model, call backward, return the loss) runs first, under `enable_grad()`
        as in PyTorch, so it works even when `step` is called inside `no_grad()`; `step` returns its loss.
        Every group's hyperparameters are checked again if they changed (a scheduler, or the user, may set
        them), and every parameter's fit, before any parameter moves.
        """
        if not self.rule:
            raise NotImplementedError(f"{type(self).__name__} names no update rule: set `rule` and `state_type`, "
                                      "or override step()")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if self.param_groups != self._checked:  # a scheduler or the user changed a hyperparameter
            for i, group in enumerate(self.param_groups):
                self._validate(group)  # every group before any parameter moves
                if self._format(group) != self._format(self._checked[i]):
                    raise ValueError(f"{type(self).__name__}: param group {i} changed how its state is stored "
                                     f"({self._format(self._checked[i])} -> {self._format(group)}); the state "
                                     "format is fixed when the optimizer is created")
            self._checked = [dict(group) for group in self.param_groups]
            for group, buffer in self._pairs:
                buffer.set_maximize(group.get("maximize") is True)
        pairs = self._pairs
        has_grad = None
        if _tensor.rebind_epoch != self._in_place_at:  # some tensor's data or grad moved since all were in place
            for _, buffer in pairs:
                buffer.check_rebound()  # every buffer first: a misfit raises before anything moves
            has_grad = [buffer.gather() for _, buffer in pairs]
            # in place now unless some parameter has no grad; the gather's own rebinding came before this
            every_grad = all(has is None for has in has_grad)
            self._in_place_at = _tensor.rebind_epoch if every_grad else -1
            if every_grad:
                has_grad = None
        if self.skip_nonfinite and not all([buffer.grads_finite(None if has_grad is None else has_grad[i])
                                            for i, (_, buffer) in enumerate(pairs)]):
            self.skipped_steps += 1
            return loss
        hyperparameters = self._hyperparameters
        for i, (group, buffer) in enumerate(pairs):
            if buffer.uniform and (has_grad is None or has_grad[i] is None):
                # The common step: every count equal and every grad present, so one call over the whole buffer.
                buffer.count += 1
                buffer.update(**hyperparameters(group, buffer.count))
            else:
                buffer.step_some(None if has_grad is None else has_grad[i], hyperparameters, group)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the grads of all parameters: to None (the default, as in PyTorch) or to zeros in place.

        After a step each grad is a view of the flat grad buffer, so with `set_to_none=False` the next
        backward adds into the buffer and the step copies nothing: the fastest loop, when every parameter
        gets a grad (a zero grad still moves a parameter under momentum or Adam, a missing one does not).
        """
        if set_to_none:
            for group in self.param_groups:
                for p in group["params"]:
                    p._grad = None
            _tensor.note_rebind()
            return
        for group, buffers in zip(self.param_groups, self._buffers):
            for buffer in buffers:
                buffer.grad_buf.fill(0)  # all the views at once
                for p, view in zip(buffer.params, buffer.grad_views):
                    if p._grad is not None and p._grad is not view:  # a grad kept elsewhere, zeroed where it is
                        p._grad[...] = 0
            if not buffers:  # a subclass with its own step() has no flat buffers
                for p in group["params"]:
                    if p._grad is not None:
                        p._grad[...] = 0

    # ---- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> dict[Tensor, dict[str, Any]]:
        """Per-parameter state: `step` and views of the state arrays (live, not copies).

        With `state_dtype` "bfloat16" or "int8" these are the stored arrays: uint16 words, or uint8 codes and
        `<name>_absmax` per block (`lowbit.decode` turns them into float32).
        """
        result: dict[Tensor, dict[str, Any]] = {}
        for buffers in self._buffers:
            for buffer in buffers:
                for i, p in enumerate(buffer.params):
                    entry: dict[str, Any] = {"step": int(buffer.steps[i])}
                    entry.update((name, views[i]) for name, views in buffer.state_views.items())
                    result[p] = entry
        return result

    def _locate(self) -> list[tuple[_FlatBuffer, int]]:
        """(buffer, index in buffer) for every parameter, in state-dict order (groups, then params)."""
        places = []
        for group, buffers in zip(self.param_groups, self._buffers):
            where = {id(p): (buffer, i) for buffer in buffers for i, p in enumerate(buffer.params)}
            places.extend(where[id(p)] for p in group["params"])
        return places

    def __deepcopy__(self, memo: dict[int, Any]) -> Optimizer:
        """An optimizer over copies of the parameters, with a copy of the state, as `copy.deepcopy` of PyTorch's.

        `copy.deepcopy((model, opt))` gives an optimizer that steps the copied model. The flat buffers'
        views do not survive a deep copy as views (the copied arrays would be separate, and the bound
        kernels would still step the original's buffers), so the copy is built again: the same class,
        settings and groups, over the parameters as `memo` copies them, then this state through
        `state_dict()`. Fields a subclass added are deep-copied as they are.
        """
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        built = ("param_groups", "_buffers", "_pairs", "_checked", "_in_place_at")  # made by __init__ below
        for key, value in self.__dict__.items():
            if key not in built:
                new.__dict__[key] = copy.deepcopy(value, memo)
        groups = [{key: copy.deepcopy(value, memo) for key, value in group.items() if key not in SCHEDULE_KEYS}
                  for group in self.param_groups]  # a scheduler's keys come back with the state dict
        low_bit = {key: new.defaults[key] for key in _FORMAT_KEYS if key in new.defaults}
        Optimizer.__init__(new, groups, new.defaults, new.backend, new.skip_nonfinite, **low_bit)
        new.load_state_dict(self.state_dict())
        return new

    def state_dict(self) -> dict[str, Any]:
        """A snapshot: {'state': {index: {'step', arrays...}}, 'param_groups': [...], 'skipped_steps': n}.

        As PyTorch's, with parameters numbered across groups; parameters never stepped are left out, and
        a group built from (name, tensor) pairs keeps its "param_names" (state is still keyed by number).
        `skipped_steps` counts the steps `skip_nonfinite=True` refused (PyTorch has no such entry).
        """
        state = {}
        for index, (buffer, i) in enumerate(self._locate()):
            step = int(buffer.steps[i])
            if step:
                entry: dict[str, Any] = {"step": step}
                entry.update((name, views[i].copy()) for name, views in buffer.state_views.items())
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
        group's names, and a group saved without names keeps its own. Parameters absent from the saved
        state start afresh, their state as the record's `init` makes it.

        State saved in another format (float32, bfloat16, int8 or another block size; the saved groups'
        `state_dtype` and `block_size` say which) is decoded and encoded into this optimizer's format,
        which does not change; state saved in this format is copied exactly.
        """
        name = type(self).__name__
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'") from None
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        sources = [self._format(saved) for saved in saved_groups]  # how each group's state was saved
        saved_groups = [{k: v for k, v in saved.items() if k not in _FORMAT_KEYS} for saved in saved_groups]
        for i, (saved, group, source) in enumerate(zip(saved_groups, self.param_groups, sources)):
            if source["state_dtype"] != "float32":
                self._check_state_format(*source.values())
            if len(saved.get("params", ())) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: param group {i} has {len(saved.get('params', ()))} "
                                 f"parameters in the state dict, {len(group['params'])} here")
            unknown = set(saved) - set(group) - {"param_names"} - SCHEDULE_KEYS
            if unknown:
                raise ValueError(f"{name}.load_state_dict: param group {i} has unknown keys {sorted(unknown)}")
            if "param_names" in saved:
                self._named(saved, group["params"])  # checks the names only
            self._validate({**group, **saved})
        skipped = state_dict.get("skipped_steps", self.skipped_steps)
        if isinstance(skipped, bool) or not isinstance(skipped, (int, np.integer)) or skipped < 0:
            raise ValueError(f"{name}.load_state_dict: skipped_steps is {skipped!r}, expected an int >= 0")
        places = self._locate()
        group_of = [i for i, group in enumerate(self.param_groups) for _ in group["params"]]
        updates = []
        for index, entry in saved_state.items():
            if not isinstance(index, (int, np.integer)) or not 0 <= index < len(places):
                raise ValueError(f"{name}.load_state_dict: state for parameter {index!r}, but there are "
                                 f"{len(places)} parameters")
            buffer, i = places[index]
            try:
                entry = buffer.convert(dict(entry), sources[group_of[index]])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name}.load_state_dict: the state of parameter {index} cannot be converted to "
                                 f"this optimizer's format: {error}") from None
            expected = {"step", *buffer.state_views}
            if set(entry) != expected:
                raise ValueError(f"{name}.load_state_dict: state of parameter {index} has keys {sorted(entry)}, "
                                 f"expected {sorted(expected)}")
            step = entry["step"]
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
                raise ValueError(f"{name}.load_state_dict: parameter {index} has step {step!r}, expected an int >= 0")
            for key, views in buffer.state_views.items():
                value = np.asarray(entry[key])
                if value.shape != views[i].shape:
                    raise ValueError(f"{name}.load_state_dict: {key} of parameter {index} has shape {value.shape}, "
                                     f"expected {views[i].shape}")
                if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
                    raise ValueError(f"{name}.load_state_dict: {key} of parameter {index} has dtype {value.dtype}, "
                                     "expected real numbers")
            updates.append((buffer, i, int(step), entry))
        for group, saved in zip(self.param_groups, saved_groups):
            # Lists again: a checkpoint's JSON turns the names into a tuple. The next step syncs the groups.
            group.update({k: list(v) if k == "param_names" else v for k, v in saved.items() if k != "params"})
        buffers = {id(buffer): buffer for buffer, _ in places}
        steps = {key: np.zeros(len(buffer.params), np.int64) for key, buffer in buffers.items()}
        for (buffer, i), group in zip(places, (g for g in self.param_groups for _ in g["params"])):
            fresh = buffer.fresh_state(buffer.param_views[i], group)
            for views, value in zip(buffer.state_views.values(), fresh):
                views[i][...] = value
        for buffer, i, step, entry in updates:
            steps[id(buffer)][i] = step
            for key, views in buffer.state_views.items():
                np.copyto(views[i], np.asarray(entry[key]), casting="unsafe")
        for key, buffer in buffers.items():
            buffer.set_steps(steps[key])
        self.skipped_steps = int(skipped)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} (backend={self.backend!r})"]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k not in ("params", "param_names"))
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join(lines)
