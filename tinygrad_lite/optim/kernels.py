"""The fused update rules in Numba: `backend="numba"`. All Numba code in tinygrad_lite lives here.

Each public function has exactly the signature of its numpy reference in `functional.py` and the
same result. The kernel rules:

- Arrays are contiguous 1-D buffers of one float dtype (the optimizer's flat buffers); any other
  contiguous shape is viewed as 1-D, a non-contiguous array is refused.
- A kernel reads and writes every array once per step, in place, in one loop, with no Python
  objects inside: only arrays and scalars of the arrays' dtype.
- float32 stays float32. Numba promotes to float64 as soon as a Python float or an int literal
  such as `1 - beta` meets a float32, and LLVM then emits scalar double code instead of packed
  float32 code. So every scalar (including 1 - beta and the bias corrections) is computed in
  Python and cast to the array dtype *before* the kernel is called, and the loop body contains no
  literals. bench/RESULTS.md records the packed instructions `inspect_asm` shows for the loops.
- `error_model="numpy"`: a division by zero gives inf/nan as in numpy instead of a Python
  exception check, which would also stop the loop from vectorising.
- Fast-math allows contraction (FMA), reassociation, reciprocals and ignoring the sign of zero,
  but not `nnan`/`ninf`: a NaN or inf gradient must reach the parameter, never vanish.
- RMSProp and Adam divide by sqrt(s) + eps. In float32 that division may use the CPU's reciprocal
  estimate plus one Newton step (`_reciprocal`; x86: `vrcpps` + FMA) instead of `vdivps`, which
  shares the divider unit with `vsqrtps` and bound the loops while the arrays sit in cache. The
  update is then off by at most about 3e-7 relative (the exact float32 division: 1.5e-7). It is
  used only when eps is a normal float32 (the denominator then lies in [eps, inf] or is NaN, where
  the estimate is well defined) and the buffers fit in cache (`_estimate`); otherwise, and always
  in float64, the loop divides exactly.
- Threads. Below `PARALLEL_THRESHOLD` elements the serial kernel runs. Above it a `prange`
  kernel runs the serial loop on 4096-element blocks on `numba.get_num_threads()` threads
  (NUMBA_NUM_THREADS, or `tinygrad_lite.set_num_threads(n)`; one thread means the serial kernel).
  Left at their defaults, these threads made the fused step lose to plain numpy (issue 10: a
  digits MLP took 190 ms an epoch against numpy's 38) for two reasons, and the design answers each:
  - Spinning. Numba's OpenMP layer (the default where TBB is missing) keeps its threads spinning
    after every launch (GNU OpenMP: 300,000 rounds, GOMP_SPINCOUNT), and waits for them by spinning
    too, so they fought
    OpenBLAS's threads (the matmuls just before and after the step) and other processes for the two
    cores. The threads therefore wait passively: `_start_threads` sets OMP_WAIT_POLICY=passive only
    while Numba loads its OpenMP runtime (which reads it once) and removes it again, so torch's and
    scikit-learn's own OpenMP runtimes, loaded before or after, never see it. A wait policy the user
    set (OMP_WAIT_POLICY, GOMP_SPINCOUNT, KMP_BLOCKTIME, KMP_LIBRARY) wins, and so does a runtime
    that other code loaded first. The matmuls' BLAS threads are left as the user has them: the step
    runs between matmuls, never beside one, so the two pools only meet when one of them spins.
  - Busy machines. A parallel launch ends only when every thread has joined it. While another
    process holds a core, the second thread may wait a scheduler time slice (7.9-25 ms measured,
    against 20 us for the serial loop at 66k elements), and with fixed shares its half waited with
    it. So the threads do not get fixed shares: each claims the next free block from an atomic
    counter (`_claim`, one atomic add per 4096 elements), and a thread that turns up late finds the
    work done. Each lane counts its blocks; when one thread did more than halfway between its share and
    all of it (75% of the blocks with two threads), the others did not turn up in time, and the
    next launches run the serial kernel (1, then 2, 4 ... up to _MAX_BACKOFF launches, reset by one
    launch that was shared; `_Helpers`). The same rule keeps the serial kernel where a buffer is
    too small for a passive thread's wake-up to pay.
  Serial and parallel kernels do the same arithmetic on every element (blocks start at multiples of
  4096, so the vector loop and its tail cover the same elements), so which one ran a step never
  changes a number; tests/test_threads.py checks them bit for bit. NUMBA_THREADING_LAYER still picks
  the layer (the wait policy matters only to omp; workqueue, which never spins, is not safe to call
  from several Python threads at once, which is why it is not forced here).
  bench/train_step.py measures all of this in the default environment and with a core kept busy.
- Compilation is lazy (first use, per dtype) and cached on disk (`cache=True`). If the cache
  cannot be used (unwritable directory, corrupt files) the kernels compile in memory instead.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

PARALLEL_THRESHOLD = 1 << 16  # elements; from the serial/parallel sweep in bench/optim_step.py
_BLOCK = 1 << 12  # elements per parallel work item, claimed one at a time by whichever thread is free
_ESTIMATE_MIN_EPS = float(np.finfo(np.float32).tiny)  # smallest eps for which _reciprocal may estimate
_ESTIMATE_MAX_SIZE = 1 << 20  # elements; beyond, the loops are memory-bound and divide exactly (see _estimate)
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}  # no nnan/ninf: NaN and inf keep their meaning
_OPTIONS = dict(fastmath=_FASTMATH, error_model="numpy", nogil=True, boundscheck=False)

_dispatchers: list = []  # every kernel, so a broken cache can be switched off for all of them


def _kernel(parallel: bool = False) -> Callable:
    """`numba.njit` with the kernel options, cached on disk when the cache directory is usable."""

    def wrap(fn: Callable) -> Callable:
        try:
            dispatcher = numba.njit(cache=True, parallel=parallel, **_OPTIONS)(fn)
        except Exception as error:  # e.g. NUMBA_CACHE_DIR is not a writable directory
            warnings.warn(f"tinygrad_lite kernels: numba cache unusable ({error}); compiling in memory",
                          RuntimeWarning, stacklevel=2)
            dispatcher = numba.njit(cache=False, parallel=parallel, **_OPTIONS)(fn)
        _dispatchers.append(dispatcher)
        return dispatcher

    return wrap


# ---- a cheaper reciprocal for float32 ------------------------------------------------------------


@intrinsic
def _reciprocal(typingctx, x):
    """1/x for x in [smallest normal, inf] or NaN; float32 may use a reciprocal estimate plus a Newton step.

    LLVM turns `1/x` into an estimate only when the division carries `arcp` and `ninf` (x86:
    `vrcpps` and one FMA Newton step for packed float32, scalar and float64 divisions stay exact).
    `ninf` makes an infinite x or 1/x undefined, so x = inf is replaced by 1 before the division
    and its result by the exact 1/inf = 0 after it. The caller keeps x >= the smallest normal
    float32, so 1/x stays finite; NaN passes through as NaN. The kernels' own fast-math set has no
    `ninf`, which is why this is one instruction with its own flags instead of a kernel option.
    """
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        (value,) = args
        one = ir.Constant(value.type, 1.0)
        if signature.args[0] != types.float32:
            return builder.fdiv(one, value)
        infinite = builder.fcmp_ordered("==", value, ir.Constant(value.type, math.inf))
        estimate = builder.fdiv(one, builder.select(infinite, one, value), flags=("arcp", "ninf", "afn"))
        return builder.select(infinite, ir.Constant(value.type, 0.0), estimate)

    return x(x), codegen


# ---- the serial kernels: one loop each, scalars already in the arrays' dtype ---------------------


@_kernel()
def _sgd_serial(param, grad, momentum_buffer, lr, momentum, one_minus_dampening, weight_decay, nesterov, first_step):
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g += weight_decay * param[i]
        if momentum != 0:
            if first_step:
                buf = g
            else:
                buf = momentum * momentum_buffer[i] + one_minus_dampening * g
            momentum_buffer[i] = buf
            g = g + momentum * buf if nesterov else buf
        param[i] -= lr * g


@_kernel()
def _momentum_serial(param, grad, velocity, lr, beta, one_minus_beta):
    for i in range(param.size):
        v = beta * velocity[i] + one_minus_beta * grad[i]
        velocity[i] = v
        param[i] -= lr * v


@_kernel()
def _rmsprop_serial(param, grad, square_avg, lr, beta, one_minus_beta, eps, weight_decay, estimate):
    # `estimate` is the same on every iteration, so LLVM compiles one loop per value (no branch inside).
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g += weight_decay * param[i]
        s = beta * square_avg[i] + one_minus_beta * g * g
        square_avg[i] = s
        if estimate:
            param[i] -= lr * g * _reciprocal(math.sqrt(s) + eps)
        else:
            param[i] -= lr * g / (math.sqrt(s) + eps)


@_kernel()
def _adam_serial(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                 weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate):
    # Adam and AdamW share this loop: Adam has decay = 1, AdamW has weight_decay = 0.
    for i in range(param.size):
        p = param[i] * decay
        g = grad[i]
        if weight_decay != 0:
            g += weight_decay * p
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if estimate:
            param[i] = p - step_size * m * _reciprocal(math.sqrt(v) * inv_sqrt_bias_correction2 + eps)
        else:
            param[i] = p - step_size * m / (math.sqrt(v) * inv_sqrt_bias_correction2 + eps)


# ---- the parallel kernels: the serial loop on blocks, each thread claiming the next free block ---


@intrinsic
def _claim(typingctx, claims):
    """claims[0] += 1, atomically; returns the old value: the next block for the calling thread."""
    if not (isinstance(claims, types.Array) and claims.dtype == types.int64 and claims.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        first = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", first, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(claims), codegen


@_kernel(parallel=True)
def _sgd_parallel(param, grad, momentum_buffer, lr, momentum, one_minus_dampening, weight_decay, nesterov, first_step,
                  claims):
    n = param.size
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * _BLOCK < n:
            lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
            _sgd_serial(param[lo:hi], grad[lo:hi], momentum_buffer[lo:hi], lr, momentum, one_minus_dampening,
                        weight_decay, nesterov, first_step)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _momentum_parallel(param, grad, velocity, lr, beta, one_minus_beta, claims):
    n = param.size
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * _BLOCK < n:
            lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
            _momentum_serial(param[lo:hi], grad[lo:hi], velocity[lo:hi], lr, beta, one_minus_beta)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _rmsprop_parallel(param, grad, square_avg, lr, beta, one_minus_beta, eps, weight_decay, estimate, claims):
    n = param.size
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * _BLOCK < n:
            lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
            _rmsprop_serial(param[lo:hi], grad[lo:hi], square_avg[lo:hi], lr, beta, one_minus_beta, eps,
                            weight_decay, estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _adam_parallel(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                   weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate, claims):
    n = param.size
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * _BLOCK < n:
            lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
            _adam_serial(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi], beta1, one_minus_beta1,
                         beta2, one_minus_beta2, eps, weight_decay, decay, step_size, inv_sqrt_bias_correction2,
                         estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


# ---- scalars: the article's hyperparameters turned into what each loop multiplies by ------------


def _estimate(eps, size):
    """Whether RMSProp/Adam use `_reciprocal`'s estimate: eps is a normal float32 and the buffers fit in cache.

    Below the smallest normal eps the estimate would be undefined (1/x may overflow). Above
    _ESTIMATE_MAX_SIZE elements the loop waits on memory, the divider is no longer the bottleneck and
    the estimate's extra instructions made it 2-9% slower at 1e7 (bench/RESULTS.md).
    """
    return eps >= _ESTIMATE_MIN_EPS and size <= _ESTIMATE_MAX_SIZE


def _sgd_scalars(size, lr, momentum, dampening, nesterov, weight_decay, first_step):
    return lr, momentum, 1 - dampening, weight_decay, bool(nesterov), bool(first_step)


def _momentum_scalars(size, lr, beta):
    return lr, beta, 1 - beta


def _rmsprop_scalars(size, lr, beta, eps, weight_decay):
    return lr, beta, 1 - beta, eps, weight_decay, _estimate(eps, size)


def _adam_scalars(size, lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2):
    return (beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay, 1.0, lr / bias_correction1,
            1 / math.sqrt(bias_correction2), _estimate(eps, size))


def _adamw_scalars(size, lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2):
    return (beta1, 1 - beta1, beta2, 1 - beta2, eps, 0.0, 1 - lr * weight_decay, lr / bias_correction1,
            1 / math.sqrt(bias_correction2), _estimate(eps, size))


# rule -> (serial kernel, parallel kernel, (size, **hyper) -> scalars in the order the kernels take them)
_RULES: dict[str, tuple[Callable, Callable, Callable]] = {
    "sgd": (_sgd_serial, _sgd_parallel, _sgd_scalars),
    "momentum": (_momentum_serial, _momentum_parallel, _momentum_scalars),
    "rmsprop": (_rmsprop_serial, _rmsprop_parallel, _rmsprop_scalars),
    "adam": (_adam_serial, _adam_parallel, _adam_scalars),
    "adamw": (_adam_serial, _adam_parallel, _adamw_scalars),
}


# ---- compiling and launching -------------------------------------------------------------------


def _signature(arrays: Sequence[np.ndarray], scalars: Sequence, claims: bool = False) -> tuple:
    """Numba types for a call: the arrays, then each scalar as the arrays' dtype (flags as booleans).

    A parallel kernel takes one more argument, its int64 `claims` array.
    """
    return _types(arrays[0].dtype, len(arrays), tuple(isinstance(s, bool) for s in scalars), claims)


@functools.cache
def _types(dtype: np.dtype, n_arrays: int, flags: tuple[bool, ...], claims: bool) -> tuple:
    # Built once per layout: numba.typeof on every call costs more than a 1,000-element update.
    scalar = numba.from_dtype(dtype)
    array = numba.types.Array(scalar, 1, "C")  # what _check guarantees: 1-D, contiguous, writeable
    extra = (numba.types.Array(numba.int64, 1, "C"),) if claims else ()
    return (array,) * n_arrays + tuple(numba.boolean if flag else scalar for flag in flags) + extra


def _compile(kernel: Callable, signature: tuple) -> Callable:
    """Compile (or load from the cache) `kernel` for `signature` and return its machine-code entry point.

    Calling the entry point skips the dispatcher's per-call type resolution; it converts Python
    floats to the declared scalar types on entry, so the loop still sees only the arrays' dtype.
    """
    entry = _entry_points.get((kernel, signature))
    if entry is None:
        try:
            entry = kernel.compile(signature)
        except Exception as error:  # a corrupt cache file: compile without the cache from now on
            if not _disable_cache(error):
                raise
            entry = kernel.compile(signature)
        _entry_points[(kernel, signature)] = entry  # numba's own lookup costs tens of microseconds a call
    return entry


_entry_points: dict[tuple, Callable] = {}


def _disable_cache(error: Exception) -> bool:
    """Switch every kernel to in-memory compilation; False if caching was already off."""
    from numba.core.caching import NullCache

    if all(isinstance(d._cache, NullCache) for d in _dispatchers):
        return False
    warnings.warn(f"tinygrad_lite kernels: numba cache unreadable ({type(error).__name__}: {error}); "
                  "compiling in memory", RuntimeWarning, stacklevel=3)
    for d in _dispatchers:
        d._cache = NullCache()
    return True


def _check(rule: str, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The arrays as 1-D views, after checking they are contiguous, writeable and of param's dtype and size."""
    param = arrays[0]
    if not isinstance(param, np.ndarray) or param.dtype not in (np.float32, np.float64):
        raise ValueError(f"{rule} kernel: param must be a float32 or float64 numpy array, "
                         f"got {type(param).__name__} {getattr(param, 'dtype', '')}")
    names = ("param", "grad", *(f"state array {i}" for i in range(1, len(arrays) - 1)))
    flat = []
    for name, a in zip(names, arrays):
        if not isinstance(a, np.ndarray) or a.dtype != param.dtype or a.size != param.size:
            raise ValueError(f"{rule} kernel: {name} must be a numpy array of {param.size} {param.dtype} values "
                             f"like param, got {type(a).__name__} {getattr(a, 'shape', '')} {getattr(a, 'dtype', '')}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"{rule} kernel: {name} of shape {a.shape} must be C-contiguous and writeable "
                             "(the kernels run over contiguous 1-D buffers; use np.ascontiguousarray)")
        flat.append(a.reshape(-1))
    return tuple(flat)


# ---- threads: passive waiting, and the serial kernel while helper threads do not turn up ----------

_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")  # the user's, if any
_threads_started = False


def _start_threads() -> None:
    """Start Numba's threading layer, with OMP_WAIT_POLICY=passive unless the user set a wait policy.

    The OpenMP runtime reads its wait policy once, when it is loaded, which Numba does here; the
    variable is set only for that moment and removed again, so libraries loaded later (torch's own
    OpenMP, scikit-learn's) never see it. A runtime that something else loaded first keeps its policy.
    """
    global _threads_started
    if _threads_started:
        return
    chosen = any(name in os.environ for name in _WAIT_SETTINGS)
    if not chosen:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        numba.get_num_threads()  # loads the threading layer, and with it the OpenMP runtime
    finally:
        if not chosen:
            del os.environ["OMP_WAIT_POLICY"]
    _threads_started = True


class _Helpers:
    """The busy-machine rule: after a parallel launch the other threads did not share, run serially for a while.

    A lane "shared" when the busiest thread did at most halfway between its equal part and all the
    blocks (75% with two threads). Otherwise the next `backoff` launches of any kernel run serially,
    and `backoff` doubles (to _MAX_BACKOFF) each time it happens again; one shared launch resets it.
    """

    def __init__(self) -> None:
        self.serial_left = 0  # launches still to run serially
        self.backoff = 1

    def expected(self) -> bool:
        """Whether this launch should try the parallel kernel."""
        if self.serial_left:
            self.serial_left -= 1
            return False
        return True

    def record(self, claims: np.ndarray) -> None:
        """Learn from a parallel launch's `claims` (blocks done by each lane after the block counter)."""
        done = claims[1:]
        lanes, busiest = done.size, int(done.max())
        if 2 * lanes * busiest <= (lanes + 1) * int(done.sum()):
            self.backoff = 1
        else:
            self.serial_left = self.backoff
            self.backoff = min(2 * self.backoff, _MAX_BACKOFF)


_MAX_BACKOFF = 256  # launches; how long a busy machine's serial stretch may grow before threads are tried again
_helpers = _Helpers()


def bind(rule: str, arrays: Sequence[np.ndarray]) -> Callable[..., None]:
    """`rule`'s update on fixed `arrays`: the one path from a public call to the machine code.

    The returned function takes the rule's keyword scalars, as the `functional.py` rule does, and
    costs one Python call plus the machine code: `Optimizer.step` calls it once per flat buffer.
    From PARALLEL_THRESHOLD elements up it runs the parallel kernel, unless only one thread is
    allowed or the busy-machine rule (`_Helpers`) says the other threads are not turning up.
    Either kernel gives bit-identical results, so which one ran never changes a number.
    """
    flat = _check(rule, arrays)
    serial, parallel, scalars = _RULES[rule]
    size = flat[0].size
    parallel_sized = size >= PARALLEL_THRESHOLD
    entries: dict[Callable, Callable] = {}

    def update(**hyper: float) -> None:
        values = scalars(size, **hyper)
        lanes = _lanes() if parallel_sized else 1
        kernel = parallel if lanes > 1 and _helpers.expected() else serial
        entry = entries.get(kernel)
        if entry is None:  # compiled (or loaded from the cache) on the first call
            entry = entries[kernel] = _compile(kernel, _signature(flat, values, claims=kernel is parallel))
        if kernel is serial:
            entry(*flat, *values)
            return
        claims = np.zeros(1 + lanes, np.int64)  # [next free block, blocks done by each lane]
        entry(*flat, *values, claims)
        _helpers.record(claims)

    update.kernel = parallel if parallel_sized else serial  # type: ignore[attr-defined]  (chosen by size)
    return update


def _lanes() -> int:
    _start_threads()
    return numba.get_num_threads()


def _launch(rule: str, arrays: Sequence[np.ndarray], hyper: dict) -> None:
    bind(rule, arrays)(**hyper)


def set_num_threads(n: int) -> None:
    """Threads for the parallel kernels: 1 <= n <= NUMBA_NUM_THREADS (numba's own check)."""
    _start_threads()
    numba.set_num_threads(n)


# ---- the public rules: the signatures of functional.py ----------------------------------------


def sgd(param: np.ndarray, grad: np.ndarray, momentum_buffer: np.ndarray | None, *, lr: float, momentum: float,
        dampening: float, nesterov: bool, weight_decay: float, first_step: bool) -> None:
    """Fused `functional.sgd`: W -= lr * dW with PyTorch's momentum, dampening, nesterov, weight decay."""
    if momentum_buffer is None:
        if momentum:
            raise ValueError(f"sgd kernel: momentum={momentum} needs a momentum_buffer, got None")
        momentum_buffer = param  # never read or written when momentum == 0
    _launch("sgd", (param, grad, momentum_buffer), dict(lr=lr, momentum=momentum, dampening=dampening,
                                                         nesterov=nesterov, weight_decay=weight_decay,
                                                         first_step=first_step))


def momentum(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, *, lr: float, beta: float) -> None:
    """Fused `functional.momentum`: v = beta*v + (1-beta)*dW;  W -= lr*v."""
    _launch("momentum", (param, grad, velocity), dict(lr=lr, beta=beta))


def rmsprop(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, *, lr: float, beta: float, eps: float,
            weight_decay: float) -> None:
    """Fused `functional.rmsprop`: s = beta*s + (1-beta)*dW^2;  W -= lr * dW / (sqrt(s) + eps)."""
    _launch("rmsprop", (param, grad, square_avg), dict(lr=lr, beta=beta, eps=eps, weight_decay=weight_decay))


def adam(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, lr: float,
         beta1: float, beta2: float, eps: float, weight_decay: float, bias_correction1: float,
         bias_correction2: float) -> None:
    """Fused `functional.adam`, computed as torch does: W -= (lr/bc1) * v / (sqrt(s)/sqrt(bc2) + eps)."""
    _launch("adam", (param, grad, exp_avg, exp_avg_sq),
            dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                 bias_correction1=bias_correction1, bias_correction2=bias_correction2))


def adamw(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, lr: float,
          beta1: float, beta2: float, eps: float, weight_decay: float, bias_correction1: float,
          bias_correction2: float) -> None:
    """Fused `functional.adamw`: W *= 1 - lr*weight_decay inside the Adam loop, then the Adam step."""
    _launch("adamw", (param, grad, exp_avg, exp_avg_sq),
            dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                 bias_correction1=bias_correction1, bias_correction2=bias_correction2))
