"""Gradient clipping by total norm or by value, as `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`.

When the grads are views that together tile one contiguous buffer (an optimizer's flat grad buffer, see
`optim/base.py`), the norm is one reduction over that buffer and the scaling one multiply; any other grads
are reduced one by one. The buffer is recognised from the arrays alone (their common `.base`), so this module
knows nothing of optimizers.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_lite._tensor import Tensor


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[np.ndarray]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


# id(buffer) -> weak references to the buffer and to the grads seen to tile it. An optimizer's grads are the
# same view objects from step to step, so the tiling is verified once rather than on every call.
_tilings: dict[int, tuple[weakref.ref, tuple[weakref.ref, ...]]] = {}


def _tiles(base: Any, members: list[np.ndarray]) -> bool:
    """True when `members` (views of `base`) cover the 1-D buffer `base` exactly: no gap and no overlap."""
    known = _tilings.get(id(base))
    if (known is not None and known[0]() is base and len(known[1]) == len(members)
            and all(ref() is a for ref, a in zip(known[1], members))):
        return True
    if not (isinstance(base, np.ndarray) and base.ndim == 1 and base.flags.c_contiguous
            and all(a.flags.c_contiguous and a.dtype == base.dtype for a in members)):
        return False
    end = _address(base)
    for start, a in sorted(((_address(a), a) for a in members), key=lambda pair: pair[0]):
        if start != end:
            return False
        end += a.nbytes
    if end != _address(base) + base.nbytes:
        return False
    if len(_tilings) >= 64:  # forget buffers that have gone (or a surplus), keeping the table small
        _tilings.clear()
    _tilings[id(base)] = (weakref.ref(base), tuple(weakref.ref(a) for a in members))
    return True


def _regions(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays to reduce: each buffer that the arrays tile exactly (no gap, no overlap), else the arrays."""
    regions: list[np.ndarray] = []
    views: dict[int, tuple[Any, list[np.ndarray]]] = {}
    for a in arrays:
        base = a.base
        if base is None:
            regions.append(a)
        else:
            views.setdefault(id(base), (base, []))[1].append(a)
    for base, members in views.values():
        if _tiles(base, members):
            regions.append(base)
        else:
            regions.extend(members)
    return regions


def _norm(array: np.ndarray, norm_type: float) -> Any:
    flat = array.reshape(-1)
    if norm_type == math.inf:
        return max(abs(flat.max()), abs(flat.min())) if flat.size else flat.dtype.type(0)
    if norm_type == 2.0:
        return np.sqrt(np.dot(flat, flat))
    return np.linalg.norm(flat, norm_type)


def _check_norm_type(op: str, norm_type: Any) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: norm_type must be a number or inf, got {norm_type!r}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"{op}: norm_type must be positive or inf, got {norm_type}")
    return norm_type


def get_total_norm(tensors: Any, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The norm of all given arrays (e.g. grads) together, as if concatenated into one vector.

    `foreach` is accepted for PyTorch compatibility and ignored: the reduction already runs per buffer.
    """
    norm_type = _check_norm_type("get_total_norm", norm_type)
    arrays = [np.asarray(t.data if isinstance(t, Tensor) else t) for t in
              ([tensors] if isinstance(tensors, (Tensor, np.ndarray)) else tensors)]
    if not arrays:
        return Tensor(np.float32(0.0))
    dtype = np.result_type(*arrays)
    norms = np.array([_norm(r, norm_type) for r in _regions(arrays)], dtype)
    total = norms[0] if len(norms) == 1 else _norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite "
                           f"({total}), so it cannot be clipped; pass error_if_nonfinite=False to scale the "
                           "gradients by it anyway")
    return Tensor(dtype.type(total))


def clip_grads_with_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, total_norm: Any,
                          foreach: bool | None = None) -> None:
    """Scale every grad in place by min(1, max_norm / (total_norm + 1e-6))."""
    grads = _grads(parameters)
    if not grads:
        return
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    coef = float(max_norm) / (total + 1e-6)
    if coef >= 1.0:  # a factor of 1 changes nothing (torch multiplies anyway)
        return
    with np.errstate(invalid="ignore"):  # a non-finite norm gives nan grads, as in torch, without a warning
        for region in _regions(grads):
            region *= region.dtype.type(coef)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the grads in place so their total norm is at most `max_norm`; returns the norm before clipping.

    The total norm is that of all grads concatenated (`norm_type` 2 by default, `inf` for the largest |g|);
    grads are scaled by max_norm / (total_norm + 1e-6) when that is below 1. A non-finite norm raises
    RuntimeError with `error_if_nonfinite=True`; otherwise it scales the grads to nan, as in PyTorch.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = get_total_norm(_grads(params), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clip every grad in place to [-clip_value, clip_value]."""
    value = float(clip_value)
    for region in _regions(_grads(parameters)):
        np.clip(region, -value, value, out=region)
