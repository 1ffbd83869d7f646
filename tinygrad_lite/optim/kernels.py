"""The fused update rules in Numba: `backend="numba"`. All Numba code in tinygrad_lite lives here, including
the engine's one-pass ReLU, which this module hands to `ops` when it loads (its section says why).

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
  kernel runs the serial loop on work items (runs of whole 4096-element blocks, `_work_item`) on
  `numba.get_num_threads()` threads
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
    (Choosing OpenBLAS's thread count per product by timing was measured and rejected: OpenBLAS
    rounds some shapes differently with one thread than with two, so a run's numbers would depend
    on timing; bench/RESULTS.md, issue 10.)
  - Busy machines. A parallel launch ends only when every thread has joined it. While another
    process holds a core, the second thread may wait a scheduler time slice (7.9-25 ms measured,
    against 20 us for the serial loop at 66k elements), and with fixed shares its half waited with
    it. So the threads do not get fixed shares: each claims the next free work item from an atomic
    counter (`_claim`), and a thread that turns up late finds the work done. An item is about an
    eighth of a thread's share: long enough that each thread streams long runs of every array (with
    4096-element items in turn, Adam at 1e7 elements took 1.2-2x the time of contiguous halves, in
    alternating processes), short enough to share the work. Each lane counts its items; when one
    thread did more than halfway between its share and all of it (75% of the items with two
    threads), the others did not turn up in time, and the
    next launches run the serial kernel (1, then 2, 4 ... up to _MAX_BACKOFF launches, reset by one
    launch that was shared; `_Helpers`). The same rule keeps the serial kernel where a buffer is
    too small for a passive thread's wake-up to pay.
  Serial and parallel kernels do the same arithmetic on every element (items start at multiples of
  4096, so the vector loop and its tail cover the same elements), so which one ran a step never
  changes a number; tests/test_threads.py checks them bit for bit. NUMBA_THREADING_LAYER still picks
  the layer (the wait policy matters only to omp; workqueue, which never spins, is not safe to call
  from several Python threads at once, which is why it is not forced here).
  bench/train_step.py measures all of this in the default environment and with a core kept busy.
- Compilation is lazy (first use, per dtype) and cached on disk (`cache=True`). If the cache
  cannot be used (unwritable directory, corrupt files) the kernels compile in memory instead.

The low-bit kernels (the last section; codecs and references in `lowbit.py`) keep the state as
bfloat16 words or block-wise int8 codes, and add these rules, from what `inspect_asm` showed on
this machine (AMD znver4, AVX-512):
- No fast-math: the stored state must equal the numpy reference's bit for bit, and FMA contraction
  would round m = beta*m + (1-beta)*g differently from numpy's multiply-then-add.
- Bit manipulation (bfloat16 rounding, the encoder's bucket, the code) lives in small intrinsics on
  32-bit integers. In Python, Numba widens uint32 arithmetic to 64 bits and small ints to int64,
  and the loops with it did not vectorise.
- Loops count from 0 over per-block slices, so no index can be negative and Numba's wraparound
  check disappears; a table index is unsigned for the same reason.
- LLVM emits no gather instruction for this CPU (its cost model rates znver4's gathers as slow), so
  a loop holding a table lookup stays scalar, whatever else it does. Each lookup therefore has a
  loop of its own (`_decode`, `_lookup`): the int8 update loop, the absmax
  (vpmaxud on the float bits) and the code computation around them are packed.
- Decoding needs no memory lookup where the CPU has AVX-512 VBMI (checked when the module loads, as
  Numba compiles for it): the 256-entry map is four 256-byte planes held as constants in zmm
  registers, and 64 codes at a time are decoded by vpermi2b/vpermt2b (two per plane, the code's top
  bit choosing between them) and interleaved into float32 (`_vbmi_decoder`); 0.08 ns per code
  against 0.28 for the scalar table loop, which other CPUs and each block's last codes (fewer than
  64) use. Encoding keeps the scalar lookup in the bucket table (`_lookup`). An arithmetic codec
  (the map's closed form in float64, packed zmm code with no lookup) was exact on every code and
  every float32 input but slower than the table on znver4: 0.8 ns per decoded and 1.5 per encoded
  element, against 0.3 and 0.6 (the float64 steps and select chains cost more than a scalar load).
  The bfloat16 loops have no lookup and are packed throughout (vpmovzxwd/vpslld to widen,
  vpaddd/vpsrld/vpmovdw to round).
- They always use the reciprocal estimate when eps allows it: decoding and encoding make them
  compute-bound at every size, so the memory-bound exception of `_estimate` does not apply.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import codegen as numba_codegen
from numba.extending import intrinsic

from tinygrad_lite import ops

# Elements; from the serial/parallel sweep in bench/optim_step.py. With passive waiting a launch costs 45-63 us
# (waking the second thread), so the parallel kernel first won at 262,144 elements in the quiet run of session 3
# (at 65,536, the threshold before passive waiting: 48 us parallel against 28 serial).
PARALLEL_THRESHOLD = 1 << 18
_BLOCK = 1 << 12  # parallel work items are multiples of this many elements (see _work_item)
_ESTIMATE_MIN_EPS = float(np.finfo(np.float32).tiny)  # smallest eps for which _reciprocal may estimate
_ESTIMATE_MAX_SIZE = 1 << 20  # elements; beyond, the loops are memory-bound and divide exactly (see _estimate)
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}  # no nnan/ninf: NaN and inf keep their meaning
_OPTIONS = dict(fastmath=_FASTMATH, error_model="numpy", nogil=True, boundscheck=False)

_dispatchers: list = []  # every kernel, so a broken cache can be switched off for all of them


def _kernel(parallel: bool = False, options: dict | None = None) -> Callable:
    """`numba.njit` with the kernel options, cached on disk when the cache directory is usable."""
    options = _OPTIONS if options is None else options

    def wrap(fn: Callable) -> Callable:
        try:
            dispatcher = numba.njit(cache=True, parallel=parallel, **options)(fn)
        except Exception as error:  # e.g. NUMBA_CACHE_DIR is not a writable directory
            warnings.warn(f"tinygrad_lite kernels: numba cache unusable ({error}); compiling in memory",
                          RuntimeWarning, stacklevel=2)
            dispatcher = numba.njit(cache=False, parallel=parallel, **options)(fn)
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


@numba.njit(cache=True)
def _work_item(n, lanes):
    """Elements per parallel work item: about an eighth of each thread's share, in whole _BLOCKs (see the docstring)."""
    per_lane = -(-n // (8 * lanes))
    return max(_BLOCK, -(-per_lane // _BLOCK) * _BLOCK)


@_kernel(parallel=True)
def _sgd_parallel(param, grad, momentum_buffer, lr, momentum, one_minus_dampening, weight_decay, nesterov, first_step,
                  claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _sgd_serial(param[lo:hi], grad[lo:hi], momentum_buffer[lo:hi], lr, momentum, one_minus_dampening,
                        weight_decay, nesterov, first_step)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _momentum_parallel(param, grad, velocity, lr, beta, one_minus_beta, claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _momentum_serial(param[lo:hi], grad[lo:hi], velocity[lo:hi], lr, beta, one_minus_beta)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _rmsprop_parallel(param, grad, square_avg, lr, beta, one_minus_beta, eps, weight_decay, estimate, claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _rmsprop_serial(param[lo:hi], grad[lo:hi], square_avg[lo:hi], lr, beta, one_minus_beta, eps,
                            weight_decay, estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _adam_parallel(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                   weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate, claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _adam_serial(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi], beta1, one_minus_beta1,
                         beta2, one_minus_beta2, eps, weight_decay, decay, step_size, inv_sqrt_bias_correction2,
                         estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel()
def _adam_amsgrad_serial(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, one_minus_beta1, beta2,
                         one_minus_beta2, eps, weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate):
    for i in range(param.size):
        p = param[i] * decay
        g = grad[i]
        if weight_decay != 0:
            g += weight_decay * p
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        largest = max_exp_avg_sq[i]
        if v > largest or v != v:  # np.maximum: a NaN on either side wins
            largest = v
        max_exp_avg_sq[i] = largest
        if estimate:
            param[i] = p - step_size * m * _reciprocal(math.sqrt(largest) * inv_sqrt_bias_correction2 + eps)
        else:
            param[i] = p - step_size * m / (math.sqrt(largest) * inv_sqrt_bias_correction2 + eps)


@_kernel()
def _adagrad_serial(param, grad, sum, lr, eps, weight_decay, estimate):
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g += weight_decay * param[i]
        s = sum[i] + g * g
        sum[i] = s
        if estimate:
            param[i] -= lr * g * _reciprocal(math.sqrt(s) + eps)
        else:
            param[i] -= lr * g / (math.sqrt(s) + eps)


@_kernel()
def _rmsprop_momentum_serial(param, grad, square_avg, grad_avg, momentum_buffer, lr, beta, one_minus_beta, eps,
                             weight_decay, momentum, centered, estimate):
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g += weight_decay * param[i]
        s = beta * square_avg[i] + one_minus_beta * g * g
        square_avg[i] = s
        if centered:
            a = beta * grad_avg[i] + one_minus_beta * g
            grad_avg[i] = a
            s -= a * a
        if estimate:
            step = g * _reciprocal(math.sqrt(s) + eps)
        else:
            step = g / (math.sqrt(s) + eps)
        if momentum != 0:
            step += momentum * momentum_buffer[i]
            momentum_buffer[i] = step
        param[i] -= lr * step


@_kernel()
def _lion_serial(param, grad, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, decay):
    for i in range(param.size):
        g = grad[i]
        m = exp_avg[i]
        c = beta1 * m + one_minus_beta1 * g
        step = lr if c > 0 else (-lr if c < 0 else lr * c)  # lr*sign(c); a zero stays 0 and a NaN stays NaN
        param[i] = param[i] * decay - step
        exp_avg[i] = beta2 * m + one_minus_beta2 * g


@_kernel(parallel=True)
def _adam_amsgrad_parallel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, eps, weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate,
                           claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _adam_amsgrad_serial(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi], max_exp_avg_sq[lo:hi],
                                 beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, decay, step_size,
                                 inv_sqrt_bias_correction2, estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _adagrad_parallel(param, grad, sum, lr, eps, weight_decay, estimate, claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _adagrad_serial(param[lo:hi], grad[lo:hi], sum[lo:hi], lr, eps, weight_decay, estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _rmsprop_momentum_parallel(param, grad, square_avg, grad_avg, momentum_buffer, lr, beta, one_minus_beta, eps,
                               weight_decay, momentum, centered, estimate, claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _rmsprop_momentum_serial(param[lo:hi], grad[lo:hi], square_avg[lo:hi], grad_avg[lo:hi],
                                     momentum_buffer[lo:hi], lr, beta, one_minus_beta, eps, weight_decay, momentum,
                                     centered, estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel(parallel=True)
def _lion_parallel(param, grad, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, decay, claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _lion_serial(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], lr, beta1, one_minus_beta1, beta2, one_minus_beta2,
                         decay)
            claims[1 + lane] += 1
            b = _claim(claims)


@_kernel()
def _nadam_serial(param, grad, exp_avg, exp_avg_sq, one_minus_mu_product, beta1, one_minus_beta1, beta2,
                  one_minus_beta2, eps, weight_decay, mu, one_minus_mu, lr_one_minus_mu, mu_next, one_minus_mu_next,
                  lr_mu_next, inv_sqrt_bias_correction2, estimate):
    for i in range(param.size):
        p = param[i]
        g = grad[i]
        if weight_decay != 0:
            g += weight_decay * p
        q = one_minus_mu + mu * one_minus_mu_product[i]
        one_minus_mu_product[i] = q
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        step = lr_one_minus_mu * g / q + lr_mu_next * m / (one_minus_mu_next + mu_next * q)
        if estimate:
            param[i] = p - step * _reciprocal(math.sqrt(v) * inv_sqrt_bias_correction2 + eps)
        else:
            param[i] = p - step / (math.sqrt(v) * inv_sqrt_bias_correction2 + eps)


@_kernel(parallel=True)
def _nadam_parallel(param, grad, exp_avg, exp_avg_sq, one_minus_mu_product, beta1, one_minus_beta1, beta2,
                    one_minus_beta2, eps, weight_decay, mu, one_minus_mu, lr_one_minus_mu, mu_next, one_minus_mu_next,
                    lr_mu_next, inv_sqrt_bias_correction2, estimate, claims):
    n = param.size
    block = _work_item(n, claims.size - 1)
    for lane in prange(claims.size - 1):
        b = _claim(claims)
        while b * block < n:
            lo, hi = b * block, min(n, (b + 1) * block)
            _nadam_serial(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi], one_minus_mu_product[lo:hi],
                          beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, mu, one_minus_mu,
                          lr_one_minus_mu, mu_next, one_minus_mu_next, lr_mu_next, inv_sqrt_bias_correction2, estimate)
            claims[1 + lane] += 1
            b = _claim(claims)


# ---- scalars: the article's hyperparameters turned into what each loop multiplies by ------------
# One named record per kernel, its fields in the order of the kernel's arguments after the arrays
# (tests/test_kernels.py checks the order), with a static method per rule that turns the rule's keyword
# arguments into those values. The methods return the values as a plain tuple in the fields' order:
# building the record itself (tuple.__new__ on the subclass) cost 0.2 us a step, 7% of a 1,000-element
# Adam step. `AdamScalars(*values)` names them where that helps (tests, debugging).


def _estimate(eps, size):
    """Whether RMSProp/Adam use `_reciprocal`'s estimate: eps is a normal float32 and the buffers fit in cache.

    Below the smallest normal eps the estimate would be undefined (1/x may overflow). Above
    _ESTIMATE_MAX_SIZE elements the loop waits on memory, the divider is no longer the bottleneck and
    the estimate's extra instructions made it 2-9% slower at 1e7 (bench/RESULTS.md).
    """
    return eps >= _ESTIMATE_MIN_EPS and size <= _ESTIMATE_MAX_SIZE


class SGDScalars(NamedTuple):
    """The scalars of `_sgd_serial`."""

    lr: float
    momentum: float
    one_minus_dampening: float
    weight_decay: float
    nesterov: bool
    first_step: bool

    @staticmethod
    def sgd(size, *, lr, momentum, dampening, nesterov, weight_decay, first_step):
        return (lr, momentum, 1 - dampening, weight_decay, bool(nesterov), bool(first_step))


class MomentumScalars(NamedTuple):
    """The scalars of `_momentum_serial`."""

    lr: float
    beta: float
    one_minus_beta: float

    @staticmethod
    def momentum(size, *, lr, beta):
        return (lr, beta, 1 - beta)


class RMSPropScalars(NamedTuple):
    """The scalars of `_rmsprop_serial`."""

    lr: float
    beta: float
    one_minus_beta: float
    eps: float
    weight_decay: float
    estimate: bool

    @staticmethod
    def rmsprop(size, *, lr, beta, eps, weight_decay):
        return (lr, beta, 1 - beta, eps, weight_decay, _estimate(eps, size))


class AdamScalars(NamedTuple):
    """The scalars of `_adam_serial`, which runs Adam (decay = 1) and AdamW (weight_decay = 0)."""

    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    eps: float
    weight_decay: float
    decay: float
    step_size: float
    inv_sqrt_bias_correction2: float
    estimate: bool

    @staticmethod
    def adam(size, *, lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2):
        return (beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay, 1.0, lr / bias_correction1,
                1 / math.sqrt(bias_correction2), _estimate(eps, size))

    @staticmethod
    def adamw(size, *, lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2):
        return (beta1, 1 - beta1, beta2, 1 - beta2, eps, 0.0, 1 - lr * weight_decay, lr / bias_correction1,
                1 / math.sqrt(bias_correction2), _estimate(eps, size))


class AdagradScalars(NamedTuple):
    """The scalars of `_adagrad_serial` (lr already decayed for the step)."""

    lr: float
    eps: float
    weight_decay: float
    estimate: bool

    @staticmethod
    def adagrad(size, *, lr, eps, weight_decay):
        return (lr, eps, weight_decay, _estimate(eps, size))


class RMSPropMomentumScalars(NamedTuple):
    """The scalars of `_rmsprop_momentum_serial`."""

    lr: float
    beta: float
    one_minus_beta: float
    eps: float
    weight_decay: float
    momentum: float
    centered: bool
    estimate: bool

    @staticmethod
    def rmsprop_momentum(size, *, lr, beta, eps, weight_decay, momentum, centered):
        return (lr, beta, 1 - beta, eps, weight_decay, momentum, bool(centered), _estimate(eps, size))


class LionScalars(NamedTuple):
    """The scalars of `_lion_serial`: decay = 1 - lr*weight_decay."""

    lr: float
    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    decay: float

    @staticmethod
    def lion(size, *, lr, beta1, beta2, weight_decay):
        return (lr, beta1, 1 - beta1, beta2, 1 - beta2, 1 - lr * weight_decay)


class NAdamScalars(NamedTuple):
    """The scalars of `_nadam_serial`."""

    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    eps: float
    weight_decay: float
    mu: float
    one_minus_mu: float
    lr_one_minus_mu: float
    mu_next: float
    one_minus_mu_next: float
    lr_mu_next: float
    inv_sqrt_bias_correction2: float
    estimate: bool

    @staticmethod
    def nadam(size, *, lr, beta1, beta2, eps, weight_decay, mu, mu_next, bias_correction2):
        return (beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay, mu, 1 - mu, lr * (1 - mu), mu_next,
                1 - mu_next, lr * mu_next, 1 / math.sqrt(bias_correction2), _estimate(eps, size))


# rule -> (serial kernel, parallel kernel, (size, **the rule's keywords) -> the values of its scalar record)
_RULES: dict[str, tuple[Callable, Callable, Callable]] = {
    "sgd": (_sgd_serial, _sgd_parallel, SGDScalars.sgd),
    "momentum": (_momentum_serial, _momentum_parallel, MomentumScalars.momentum),
    "rmsprop": (_rmsprop_serial, _rmsprop_parallel, RMSPropScalars.rmsprop),
    "adam": (_adam_serial, _adam_parallel, AdamScalars.adam),
    "adamw": (_adam_serial, _adam_parallel, AdamScalars.adamw),
    "adam_amsgrad": (_adam_amsgrad_serial, _adam_amsgrad_parallel, AdamScalars.adam),
    "adamw_amsgrad": (_adam_amsgrad_serial, _adam_amsgrad_parallel, AdamScalars.adamw),
    "adagrad": (_adagrad_serial, _adagrad_parallel, AdagradScalars.adagrad),
    "rmsprop_momentum": (_rmsprop_momentum_serial, _rmsprop_momentum_parallel, RMSPropMomentumScalars.rmsprop_momentum),
    "lion": (_lion_serial, _lion_parallel, LionScalars.lion),
    "nadam": (_nadam_serial, _nadam_parallel, NAdamScalars.nadam),
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

    The public rules below are `bind(...)(**keywords)`, and `Optimizer.step` binds each flat buffer once
    and calls it every step. The returned function takes the rule's keyword scalars, as the `functional.py`
    rule does, and costs one Python call plus the machine code.
    From PARALLEL_THRESHOLD elements up it runs the parallel kernel, unless only one thread is
    allowed or the busy-machine rule (`_Helpers`) says the other threads are not turning up.
    Either kernel gives bit-identical results, so which one ran never changes a number.
    """
    flat = _check(rule, arrays)
    serial, parallel, scalars = _RULES[rule]
    size = flat[0].size
    if size < PARALLEL_THRESHOLD:
        return _bind_serial(flat, serial, scalars)
    entries: dict[Callable, Callable] = {}

    def update(**hyper: float) -> None:
        values = scalars(size, **hyper)
        lanes = _lanes()
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

    update.kernel = parallel  # type: ignore[attr-defined]  (the kernel its size chose, for tests and benchmarks)
    return update


def _bind_serial(flat: Sequence[np.ndarray], serial: Callable, scalars: Callable) -> Callable[..., None]:
    """`bind` for buffers below PARALLEL_THRESHOLD: the serial kernel only, nothing else on the way to it.

    A small step is mostly this call's own cost (a 1,000-element Adam step is 3 us in all), so it
    holds just the scalars and the entry point.
    """
    size, entry = flat[0].size, None

    def update(**hyper: float) -> None:
        nonlocal entry
        values = scalars(size, **hyper)
        if entry is None:  # compiled (or loaded from the cache) on the first call
            entry = _compile(serial, _signature(flat, values))
        entry(*flat, *values)

    update.kernel = serial  # type: ignore[attr-defined]
    return update


def _lanes() -> int:
    _start_threads()
    return numba.get_num_threads()


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
    bind("sgd", (param, grad, momentum_buffer))(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                                                weight_decay=weight_decay, first_step=first_step)


def momentum(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, *, lr: float, beta: float) -> None:
    """Fused `functional.momentum`: v = beta*v + (1-beta)*dW;  W -= lr*v."""
    bind("momentum", (param, grad, velocity))(lr=lr, beta=beta)


def rmsprop(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, *, lr: float, beta: float, eps: float,
            weight_decay: float) -> None:
    """Fused `functional.rmsprop`: s = beta*s + (1-beta)*dW^2;  W -= lr * dW / (sqrt(s) + eps)."""
    bind("rmsprop", (param, grad, square_avg))(lr=lr, beta=beta, eps=eps, weight_decay=weight_decay)


def adam(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, lr: float,
         beta1: float, beta2: float, eps: float, weight_decay: float, bias_correction1: float,
         bias_correction2: float) -> None:
    """Fused `functional.adam`, computed as torch does: W -= (lr/bc1) * v / (sqrt(s)/sqrt(bc2) + eps)."""
    bind("adam", (param, grad, exp_avg, exp_avg_sq))(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, bias_correction1=bias_correction1,
        bias_correction2=bias_correction2)


def adamw(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, lr: float,
          beta1: float, beta2: float, eps: float, weight_decay: float, bias_correction1: float,
          bias_correction2: float) -> None:
    """Fused `functional.adamw`: W *= 1 - lr*weight_decay inside the Adam loop, then the Adam step."""
    bind("adamw", (param, grad, exp_avg, exp_avg_sq))(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, bias_correction1=bias_correction1,
        bias_correction2=bias_correction2)


def adam_amsgrad(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
                 max_exp_avg_sq: np.ndarray, *, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, bias_correction1: float, bias_correction2: float) -> None:
    """Fused `functional.adam_amsgrad`: Adam whose denominator uses the largest s so far."""
    bind("adam_amsgrad", (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq))(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, bias_correction1=bias_correction1,
        bias_correction2=bias_correction2)


def adamw_amsgrad(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
                  max_exp_avg_sq: np.ndarray, *, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, bias_correction1: float, bias_correction2: float) -> None:
    """Fused `functional.adamw_amsgrad`: decoupled decay inside the AMSGrad loop."""
    bind("adamw_amsgrad", (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq))(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, bias_correction1=bias_correction1,
        bias_correction2=bias_correction2)


def adagrad(param: np.ndarray, grad: np.ndarray, sum: np.ndarray, *, lr: float, eps: float,
            weight_decay: float) -> None:
    """Fused `functional.adagrad`: s += dW^2;  W -= lr_t * dW / (sqrt(s) + eps)."""
    bind("adagrad", (param, grad, sum))(lr=lr, eps=eps, weight_decay=weight_decay)


def rmsprop_momentum(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, grad_avg: np.ndarray,
                     momentum_buffer: np.ndarray, *, lr: float, beta: float, eps: float, weight_decay: float,
                     momentum: float, centered: bool) -> None:
    """Fused `functional.rmsprop_momentum`: torch's RMSprop with centered and momentum."""
    bind("rmsprop_momentum", (param, grad, square_avg, grad_avg, momentum_buffer))(
        lr=lr, beta=beta, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)


def lion(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, *, lr: float, beta1: float, beta2: float,
         weight_decay: float) -> None:
    """Fused `functional.lion`: W -= lr*(sign(beta1*m + (1-beta1)*dW) + weight_decay*W);  m = beta2*m + (1-beta2)*dW."""
    bind("lion", (param, grad, exp_avg))(lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)


def nadam(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
          one_minus_mu_product: np.ndarray, *, lr: float, beta1: float, beta2: float, eps: float,
          weight_decay: float, mu: float, mu_next: float, bias_correction2: float) -> None:
    """Fused `functional.nadam`: Adam with Nesterov momentum, as `torch.optim.NAdam`."""
    bind("nadam", (param, grad, exp_avg, exp_avg_sq, one_minus_mu_product))(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, mu=mu, mu_next=mu_next,
        bias_correction2=bias_correction2)


# ---- the engine's ReLU ----------------------------------------------------------------------------
#
# ops.Relu in numpy takes two passes each way: forward `x > 0` and `np.maximum(x, 0)` (numpy does not vectorise
# the scalar operand: 13 us on a 64x512 float32 batch, where a copy takes 3), backward `grad * mask`, which
# converts the mask to floats on the way. These loops do the same arithmetic in one pass each. ops never imports
# Numba (the numpy backend starts without it), so this module hands them to ops when it loads; from then on Relu
# runs them on C-contiguous float32 and float64 arrays. No fast-math, so the bits are numpy's; unlike numpy they
# raise no floating-point warning (np.errstate) where an inf grad meets the mask, and give the same nan.

_EXACT = dict(error_model="numpy", nogil=True, boundscheck=False)


@_kernel(options=_EXACT)
def _relu_forward(x, out, positive, zero):
    for i in range(x.size):
        v = x[i]
        positive[i] = v > zero
        out[i] = zero if v <= zero else v  # as np.maximum(x, 0): nan stays nan, -0.0 becomes 0.0


@_kernel(options=_EXACT)
def _relu_backward(grad, positive, out, one, zero):
    for i in range(grad.size):
        out[i] = grad[i] * (one if positive[i] else zero)  # as grad * mask: an inf or nan grad times 0 is nan


@functools.cache
def _relu_entries(dtype: np.dtype) -> tuple[Callable, Callable, np.generic, np.generic]:
    """The forward and backward entry points for `dtype`, and its 1 and 0: looked up once, not per call."""
    scalar = numba.from_dtype(dtype)
    array, mask = numba.types.Array(scalar, 1, "C"), numba.types.Array(numba.boolean, 1, "C")
    return (_compile(_relu_forward, (array, array, mask, scalar)),
            _compile(_relu_backward, (array, mask, array, scalar, scalar)), dtype.type(1), dtype.type(0))


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(np.maximum(x, 0), x > 0) in one pass, for a C-contiguous float32 or float64 array."""
    _check_relu("relu_forward: x", x)
    return _relu_forward_unchecked(x)


def relu_backward(grad: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """grad * positive in one pass, for a C-contiguous float32 or float64 grad and a C-contiguous mask of its shape."""
    _check_relu("relu_backward: grad", grad)
    if not (isinstance(positive, np.ndarray) and positive.dtype == np.bool_ and positive.shape == grad.shape
            and positive.flags.c_contiguous):
        raise ValueError(f"relu_backward: positive must be a C-contiguous bool array of grad's shape {grad.shape}, "
                         f"got {type(positive).__name__} {getattr(positive, 'dtype', '')} "
                         f"{getattr(positive, 'shape', '')}")
    return _relu_backward_unchecked(grad, positive)


def _check_relu(name: str, x: np.ndarray) -> None:
    if not (isinstance(x, np.ndarray) and ops._kernel_ready(x)):
        raise ValueError(f"{name} must be a C-contiguous float32 or float64 numpy array, got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')} (ops.Relu runs numpy's passes on anything else)")


# What ops.Relu calls, having checked the arrays itself: on a small batch the checks cost as much as the loop.
def _relu_forward_unchecked(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    forward, _, _, zero = _relu_entries(x.dtype)
    out, positive = np.empty_like(x), np.empty(x.shape, np.bool_)
    forward(x.reshape(-1), out.reshape(-1), positive.reshape(-1), zero)
    return out, positive


def _relu_backward_unchecked(grad: np.ndarray, positive: np.ndarray) -> np.ndarray:
    _, backward, one, zero = _relu_entries(grad.dtype)
    out = np.empty_like(grad)
    backward(grad.reshape(-1), positive.reshape(-1), out.reshape(-1), one, zero)
    return out


ops.use_relu_kernels(_relu_forward_unchecked, _relu_backward_unchecked)

# =================================================================================================
# ---- low-bit state: bfloat16 words and block-wise int8 codes (issue 15; references in lowbit.py) ----
# =================================================================================================
#
# The same loops with the state decoded on read and encoded on write (see lowbit.py for the codecs).
# Rules beyond the float32 kernels':
# - The stored state must equal lowbit.py's bit for bit, so these kernels use no fast-math at all:
#   contraction to FMA or reassociation would round the moments differently from numpy's separate
#   multiply and add. They compute the moments in the order of functional.py (e.g. (1-beta) * (g*g)).
# - Bit manipulation happens in small intrinsics on 32-bit integers. Written in Python, Numba widens
#   uint32 arithmetic to 64 bits (and uint16 to int64), which stopped the loops from vectorising.
# - Loop indices are `range` counters from 0 over per-block slices, so Numba's wraparound check for
#   negative indices is provably dead and removed; an index computed as lo + i kept it alive.

from tinygrad_lite.optim import lowbit  # noqa: E402  (this section's codecs; the float32 kernels need none)


def _i32(value: int) -> ir.Constant:
    return ir.Constant(ir.IntType(32), value)


@intrinsic
def _bfloat16_round(typingctx, x):
    """float32 -> bfloat16 word (uint16), round to nearest even, NaN kept NaN (lowbit.bfloat16_encode)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        (value,) = args
        bits = builder.bitcast(value, ir.IntType(32))
        odd = builder.and_(builder.lshr(bits, _i32(16)), _i32(1))
        rounded = builder.add(bits, builder.add(_i32(0x7FFF), odd))
        quiet = builder.or_(bits, _i32(0x00400000))
        chosen = builder.select(builder.fcmp_unordered("uno", value, value), quiet, rounded)
        return builder.trunc(builder.lshr(chosen, _i32(16)), ir.IntType(16))

    return types.uint16(types.float32), codegen


@intrinsic
def _bfloat16_widen(typingctx, word):
    """bfloat16 word (uint16) -> float32, exactly (lowbit.bfloat16_decode)."""
    if word != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        wide = builder.shl(builder.zext(args[0], ir.IntType(32)), _i32(16))
        return builder.bitcast(wide, ir.FloatType())

    return types.float32(types.uint16), codegen


@intrinsic
def _magnitude_bits(typingctx, x):
    """The bits of |x| as int32: for non-negative floats, integer order is float order, NaN above inf."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.and_(builder.bitcast(args[0], ir.IntType(32)), _i32(0x7FFFFFFF))

    return types.int32(types.float32), codegen


@intrinsic
def _float_from_bits(typingctx, bits):
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _bucket(typingctx, y):
    """lowbit's encoder bucket of |y|: its top 16 bits, less BUCKET_FIRST, clamped to the table (unsigned index)."""
    if y != types.float32:
        return None

    def codegen(context, builder, signature, args):
        bits = builder.and_(builder.bitcast(args[0], ir.IntType(32)), _i32(0x7FFFFFFF))
        index = builder.sub(builder.lshr(bits, _i32(16)), _i32(lowbit.BUCKET_FIRST))
        index = builder.select(builder.icmp_signed("<", index, _i32(0)), _i32(0), index)
        last = _i32(lowbit.N_BUCKETS - 1)
        index = builder.select(builder.icmp_signed(">", index, last), last, index)
        return index

    return types.uint32(types.float32), codegen


def _nearest(builder, y, entry):
    """k of lowbit.encoding_table: the entry's count, plus 1 when |y|'s low 16 bits pass its threshold."""
    bits = builder.bitcast(y, ir.IntType(32))
    above = builder.icmp_unsigned(">", builder.and_(bits, _i32(0xFFFF)), builder.and_(entry, _i32(0xFFFF)))
    return builder.add(builder.lshr(entry, _i32(16)), builder.zext(above, ir.IntType(32)))


@intrinsic
def _signed_code(typingctx, y, entry):
    """The signed map's code of y = x / absmax, given its bucket's table entry (lowbit.quantize_blockwise)."""
    if y != types.float32 or entry != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        y, entry = args
        k = _nearest(builder, y, entry)
        zero = _i32(lowbit.SIGNED_ZERO)
        negative = builder.icmp_signed("<", builder.bitcast(y, ir.IntType(32)), _i32(0))
        clamped = builder.select(builder.icmp_unsigned(">", k, zero), zero, k)  # the map has no -1
        code = builder.select(negative, builder.sub(zero, clamped), builder.add(zero, k))
        return builder.trunc(code, ir.IntType(8))

    return types.uint8(types.float32, types.uint32), codegen


@intrinsic
def _unsigned_code(typingctx, y, entry):
    """The unsigned map's code of y >= 0; a positive y never gets code 0 (lowbit's second-moment trap)."""
    if y != types.float32 or entry != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        y, entry = args
        k = _nearest(builder, y, entry)
        positive = builder.fcmp_ordered(">", y, ir.Constant(ir.FloatType(), 0.0))
        k = builder.select(builder.and_(positive, builder.icmp_unsigned("==", k, _i32(0))), _i32(1), k)
        return builder.trunc(k, ir.IntType(8))

    return types.uint8(types.float32, types.uint32), codegen


# ---- decoding with AVX-512 VBMI byte permutes -----------------------------------------------------
# Where the CPU has AVX-512 VBMI, 64 codes are decoded at once without a memory lookup: each byte of the
# float32 map is a 256-byte table (a "plane"), held in four zmm registers as constants; vpermi2b picks
# 64 bytes from two of them by the low 7 bits of each code, the code's top bit selects between the two
# halves, and the four planes are interleaved into 64 float32. Elsewhere, and for the last codes of a
# block, the scalar table loop decodes.


def _vbmi_enabled() -> bool:
    """Whether the CPU Numba compiles for has AVX-512 VBMI (NUMBA_CPU_FEATURES, else the host's features)."""
    features = numba.config.CPU_FEATURES
    if features is None:
        features = numba_codegen.get_host_cpu_features()
    return {"+avx512vbmi", "+avx512bw"} <= set(features.split(","))


_VBMI = _vbmi_enabled()
_VBMI_WIDTH = 64  # codes per vpermi2b


def _vbmi_decoder(table: np.ndarray) -> Callable:
    """An intrinsic writing table[codes[start:start + 64]] to out[start:start + 64] by byte permutes."""
    byte, index32 = ir.IntType(8), ir.IntType(32)
    vector = ir.VectorType(byte, _VBMI_WIDTH)
    bits = np.ascontiguousarray(table, np.float32).view(np.uint32)
    planes = [((bits >> (8 * k)) & 0xFF).astype(np.uint8) for k in range(4)]

    def constant(values: np.ndarray) -> ir.Constant:
        return ir.Constant(vector, [ir.Constant(byte, int(v)) for v in values])

    def interleave(builder, low, high):
        """Lanes low[0], high[0], low[1], high[1], ...: the bytes (or words) of wider integers, little-endian."""
        order = [j for i in range(len(low.type)) for j in (i, len(low.type) + i)]
        return builder.shuffle_vector(low, high, ir.Constant(ir.VectorType(index32, len(order)), order))

    @intrinsic
    def decode(typingctx, codes, start, out):
        if codes.dtype != types.uint8 or out.dtype != types.float32:
            return None

        def codegen(context, builder, signature, args):
            codes_array = context.make_array(signature.args[0])(context, builder, args[0])
            out_array = context.make_array(signature.args[2])(context, builder, args[2])
            source = builder.gep(codes_array.data, [args[1]])
            index = builder.load(builder.bitcast(source, vector.as_pointer()), align=1)
            permute = builder.module.declare_intrinsic(
                "llvm.x86.avx512.vpermi2var.qi.512", fnty=ir.FunctionType(vector, [vector, vector, vector]))
            upper = builder.icmp_signed("<", index, ir.Constant(vector, None))  # code >= 128
            picked = []
            for plane in planes:
                low = builder.call(permute, [constant(plane[:64]), index, constant(plane[64:128])])
                high = builder.call(permute, [constant(plane[128:192]), index, constant(plane[192:])])
                picked.append(builder.select(upper, high, low))
            words = ir.VectorType(ir.IntType(16), _VBMI_WIDTH)
            low_words = builder.bitcast(interleave(builder, picked[0], picked[1]), words)
            high_words = builder.bitcast(interleave(builder, picked[2], picked[3]), words)
            values = builder.bitcast(interleave(builder, low_words, high_words),
                                     ir.VectorType(ir.FloatType(), _VBMI_WIDTH))
            target = builder.gep(out_array.data, [args[1]])
            builder.store(values, builder.bitcast(target, values.type.as_pointer()), align=4)
            return context.get_dummy_value()

        return types.none(codes, start, out), codegen

    return decode


_signed_chunk = _vbmi_decoder(lowbit.SIGNED_MAP)
_unsigned_chunk = _vbmi_decoder(lowbit.UNSIGNED_MAP)


_LOWBIT_OPTIONS = dict(error_model="numpy", nogil=True, boundscheck=False)  # no fast-math: see above


def _lowbit_kernel(parallel: bool = False) -> Callable:
    return _kernel(parallel, _LOWBIT_OPTIONS)


# ---- int8 blocks: absmax, encode, decode --------------------------------------------------------


@_lowbit_kernel()
def _absmax(values):
    top = _magnitude_bits(values[0])
    for i in range(values.size):
        bits = _magnitude_bits(values[i])
        top = bits if bits > top else top
    return _float_from_bits(top)


@_lowbit_kernel()
def _inverse(absmax):
    return np.float32(0) if absmax == 0 else np.float32(1) / absmax


@_lowbit_kernel()
def _lookup(table, indices):
    # Alone in its loop: LLVM emits no gathers for this CPU (znver4), so a table lookup keeps any loop
    # holding it scalar; the loops around it stay packed.
    for i in range(indices.size):
        indices[i] = table[indices[i]]


@_lowbit_kernel()
def _encode(values, codes, entries, work, signed):
    """codes[:] = the nearest codes of values / absmax in the signed or unsigned map; returns the absmax."""
    absmax = _absmax(values)
    inverse = _inverse(absmax)
    for i in range(values.size):
        work[i] = _bucket(values[i] * inverse)
    _lookup(entries, work)
    if signed:  # outside the loop, so each loop stays one packed body
        for i in range(values.size):
            codes[i] = _signed_code(values[i] * inverse, work[i])
    else:
        for i in range(values.size):
            codes[i] = _unsigned_code(values[i] * inverse, work[i])
    return absmax


@_lowbit_kernel()
def _decode_table(table, codes, out):
    for i in range(codes.size):
        out[i] = table[codes[i]]


_SIGNED_MAP, _UNSIGNED_MAP = lowbit.SIGNED_MAP, lowbit.UNSIGNED_MAP  # frozen into the kernels as constants


@_lowbit_kernel()
def _decode(codes, out, signed):
    """out[:] = the signed or unsigned map at codes: byte permutes over whole runs of 64 codes where VBMI allows,
    then the table."""
    done = 0
    if _VBMI:  # a global constant: Numba prunes the branch, so other CPUs never compile the permutes
        done = codes.size - codes.size % _VBMI_WIDTH
        for chunk in range(done // _VBMI_WIDTH):
            if signed:
                _signed_chunk(codes, chunk * _VBMI_WIDTH, out)
            else:
                _unsigned_chunk(codes, chunk * _VBMI_WIDTH, out)
    _decode_table(_SIGNED_MAP if signed else _UNSIGNED_MAP, codes[done:], out[done:])


@_lowbit_kernel()
def _quantize_serial(x, codes, absmax, block_size, signed, entries):
    work = np.empty(block_size, np.uint32)
    for b in range(absmax.size):
        lo, hi = b * block_size, min(x.size, (b + 1) * block_size)
        absmax[b] = _encode(x[lo:hi], codes[lo:hi], entries, work[:hi - lo], signed)


@_lowbit_kernel()
def _dequantize_serial(codes, absmax, out, block_size, signed):
    for b in range(absmax.size):
        lo, hi = b * block_size, min(codes.size, (b + 1) * block_size)
        block, scale, values = codes[lo:hi], absmax[b], out[lo:hi]
        _decode(block, values, signed)
        for i in range(block.size):
            values[i] = values[i] * scale


# ---- bfloat16 state: the float32 loops with _bfloat16_widen on read and _bfloat16_round on write ----


@_lowbit_kernel()
def _sgd_bfloat16_serial(param, grad, momentum_buffer, lr, momentum, one_minus_dampening, weight_decay, nesterov,
                         first_step):
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        if first_step:
            buf = g
        else:
            buf = momentum * _bfloat16_widen(momentum_buffer[i]) + one_minus_dampening * g
        momentum_buffer[i] = _bfloat16_round(buf)
        g = g + momentum * buf if nesterov else buf
        param[i] -= lr * g


@_lowbit_kernel()
def _momentum_bfloat16_serial(param, grad, velocity, lr, beta, one_minus_beta):
    for i in range(param.size):
        v = _bfloat16_widen(velocity[i]) * beta + one_minus_beta * grad[i]
        velocity[i] = _bfloat16_round(v)
        param[i] -= lr * v


@_lowbit_kernel()
def _rmsprop_bfloat16_serial(param, grad, square_avg, lr, beta, one_minus_beta, eps, weight_decay, estimate):
    for i in range(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        s = _bfloat16_widen(square_avg[i]) * beta + one_minus_beta * (g * g)
        square_avg[i] = _bfloat16_round(s)
        if estimate:
            param[i] -= lr * g * _reciprocal(math.sqrt(s) + eps)
        else:
            param[i] -= lr * g / (math.sqrt(s) + eps)


@_lowbit_kernel()
def _adam_bfloat16_serial(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                          weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate):
    for i in range(param.size):
        p = param[i] * decay
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * p
        m = _bfloat16_widen(exp_avg[i]) * beta1 + one_minus_beta1 * g
        v = _bfloat16_widen(exp_avg_sq[i]) * beta2 + one_minus_beta2 * (g * g)
        exp_avg[i] = _bfloat16_round(m)
        exp_avg_sq[i] = _bfloat16_round(v)
        if estimate:
            param[i] = p - step_size * m * _reciprocal(math.sqrt(v) * inv_sqrt_bias_correction2 + eps)
        else:
            param[i] = p - step_size * m / (math.sqrt(v) * inv_sqrt_bias_correction2 + eps)


@_lowbit_kernel(parallel=True)
def _sgd_bfloat16_parallel(param, grad, momentum_buffer, lr, momentum, one_minus_dampening, weight_decay, nesterov,
                           first_step):
    n = param.size
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _sgd_bfloat16_serial(param[lo:hi], grad[lo:hi], momentum_buffer[lo:hi], lr, momentum, one_minus_dampening,
                             weight_decay, nesterov, first_step)


@_lowbit_kernel(parallel=True)
def _momentum_bfloat16_parallel(param, grad, velocity, lr, beta, one_minus_beta):
    n = param.size
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _momentum_bfloat16_serial(param[lo:hi], grad[lo:hi], velocity[lo:hi], lr, beta, one_minus_beta)


@_lowbit_kernel(parallel=True)
def _rmsprop_bfloat16_parallel(param, grad, square_avg, lr, beta, one_minus_beta, eps, weight_decay, estimate):
    n = param.size
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _rmsprop_bfloat16_serial(param[lo:hi], grad[lo:hi], square_avg[lo:hi], lr, beta, one_minus_beta, eps,
                                 weight_decay, estimate)


@_lowbit_kernel(parallel=True)
def _adam_bfloat16_parallel(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                            weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate):
    n = param.size
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _adam_bfloat16_serial(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi], beta1, one_minus_beta1,
                              beta2, one_minus_beta2, eps, weight_decay, decay, step_size, inv_sqrt_bias_correction2,
                              estimate)


# ---- int8 state: per block, decode and update into a float32 scratch block, then encode it -------
# Each serial kernel owns its scratch (one allocation per call: per 4096 elements when parallel).


@_lowbit_kernel()
def _sgd_int8_serial(param, grad, momentum_buffer, momentum_buffer_absmax, lr, momentum, one_minus_dampening,
                     weight_decay, nesterov, first_step, block_size, signed_entries):
    scratch, work = np.empty(block_size, np.float32), np.empty(block_size, np.uint32)
    for b in range(momentum_buffer_absmax.size):
        lo, hi = b * block_size, min(param.size, (b + 1) * block_size)
        w, dw, codes, buf = param[lo:hi], grad[lo:hi], momentum_buffer[lo:hi], scratch[:hi - lo]
        scale = momentum_buffer_absmax[b]
        _decode(codes, buf, True)
        for i in range(w.size):
            g = dw[i]
            if weight_decay != 0:
                g = g + weight_decay * w[i]
            if first_step:
                new = g
            else:
                new = momentum * (buf[i] * scale) + one_minus_dampening * g
            buf[i] = new
            g = g + momentum * new if nesterov else new
            w[i] -= lr * g
        momentum_buffer_absmax[b] = _encode(buf, codes, signed_entries, work[:hi - lo], True)


@_lowbit_kernel()
def _momentum_int8_serial(param, grad, velocity, velocity_absmax, lr, beta, one_minus_beta, block_size,
                          signed_entries):
    scratch, work = np.empty(block_size, np.float32), np.empty(block_size, np.uint32)
    for b in range(velocity_absmax.size):
        lo, hi = b * block_size, min(param.size, (b + 1) * block_size)
        w, dw, codes, vel = param[lo:hi], grad[lo:hi], velocity[lo:hi], scratch[:hi - lo]
        scale = velocity_absmax[b]
        _decode(codes, vel, True)
        for i in range(w.size):
            v = (vel[i] * scale) * beta + one_minus_beta * dw[i]
            vel[i] = v
            w[i] -= lr * v
        velocity_absmax[b] = _encode(vel, codes, signed_entries, work[:hi - lo], True)


@_lowbit_kernel()
def _rmsprop_int8_serial(param, grad, square_avg, square_avg_absmax, lr, beta, one_minus_beta, eps, weight_decay,
                         estimate, block_size, unsigned_entries):
    scratch, work = np.empty(block_size, np.float32), np.empty(block_size, np.uint32)
    for b in range(square_avg_absmax.size):
        lo, hi = b * block_size, min(param.size, (b + 1) * block_size)
        w, dw, codes, sq = param[lo:hi], grad[lo:hi], square_avg[lo:hi], scratch[:hi - lo]
        scale = square_avg_absmax[b]
        _decode(codes, sq, False)
        for i in range(w.size):
            g = dw[i]
            if weight_decay != 0:
                g = g + weight_decay * w[i]
            s = (sq[i] * scale) * beta + one_minus_beta * (g * g)
            sq[i] = s
            if estimate:
                w[i] -= lr * g * _reciprocal(math.sqrt(s) + eps)
            else:
                w[i] -= lr * g / (math.sqrt(s) + eps)
        square_avg_absmax[b] = _encode(sq, codes, unsigned_entries, work[:hi - lo], False)


@_lowbit_kernel()
def _adam_int8_serial(param, grad, exp_avg, exp_avg_absmax, exp_avg_sq, exp_avg_sq_absmax, beta1, one_minus_beta1,
                      beta2, one_minus_beta2, eps, weight_decay, decay, step_size, inv_sqrt_bias_correction2, estimate,
                      block_size, signed_entries, unsigned_entries):
    first, second = np.empty(block_size, np.float32), np.empty(block_size, np.float32)
    work = np.empty(block_size, np.uint32)
    for b in range(exp_avg_absmax.size):
        lo, hi = b * block_size, min(param.size, (b + 1) * block_size)
        w, dw, m_codes, v_codes = param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi]
        m_block, v_block = first[:hi - lo], second[:hi - lo]
        m_scale, v_scale = exp_avg_absmax[b], exp_avg_sq_absmax[b]
        _decode(m_codes, m_block, True)
        _decode(v_codes, v_block, False)
        for i in range(w.size):
            p = w[i] * decay
            g = dw[i]
            if weight_decay != 0:
                g = g + weight_decay * p
            m = (m_block[i] * m_scale) * beta1 + one_minus_beta1 * g
            v = (v_block[i] * v_scale) * beta2 + one_minus_beta2 * (g * g)
            m_block[i] = m
            v_block[i] = v
            if estimate:
                w[i] = p - step_size * m * _reciprocal(math.sqrt(v) * inv_sqrt_bias_correction2 + eps)
            else:
                w[i] = p - step_size * m / (math.sqrt(v) * inv_sqrt_bias_correction2 + eps)
        exp_avg_absmax[b] = _encode(m_block, m_codes, signed_entries, work[:hi - lo], True)
        exp_avg_sq_absmax[b] = _encode(v_block, v_codes, unsigned_entries, work[:hi - lo], False)


@_lowbit_kernel(parallel=True)
def _sgd_int8_parallel(param, grad, momentum_buffer, momentum_buffer_absmax, lr, momentum, one_minus_dampening,
                       weight_decay, nesterov, first_step, block_size, signed_entries):
    per_item = max(1, _BLOCK // block_size)  # whole int8 blocks per work item
    n_blocks = momentum_buffer_absmax.size
    for item in prange((n_blocks + per_item - 1) // per_item):
        b0, b1 = item * per_item, min(n_blocks, (item + 1) * per_item)
        lo, hi = b0 * block_size, min(param.size, b1 * block_size)
        _sgd_int8_serial(param[lo:hi], grad[lo:hi], momentum_buffer[lo:hi], momentum_buffer_absmax[b0:b1], lr,
                         momentum, one_minus_dampening, weight_decay, nesterov, first_step, block_size,
                         signed_entries)


@_lowbit_kernel(parallel=True)
def _momentum_int8_parallel(param, grad, velocity, velocity_absmax, lr, beta, one_minus_beta, block_size,
                            signed_entries):
    per_item = max(1, _BLOCK // block_size)
    n_blocks = velocity_absmax.size
    for item in prange((n_blocks + per_item - 1) // per_item):
        b0, b1 = item * per_item, min(n_blocks, (item + 1) * per_item)
        lo, hi = b0 * block_size, min(param.size, b1 * block_size)
        _momentum_int8_serial(param[lo:hi], grad[lo:hi], velocity[lo:hi], velocity_absmax[b0:b1], lr, beta,
                              one_minus_beta, block_size, signed_entries)


@_lowbit_kernel(parallel=True)
def _rmsprop_int8_parallel(param, grad, square_avg, square_avg_absmax, lr, beta, one_minus_beta, eps, weight_decay,
                           estimate, block_size, unsigned_entries):
    per_item = max(1, _BLOCK // block_size)
    n_blocks = square_avg_absmax.size
    for item in prange((n_blocks + per_item - 1) // per_item):
        b0, b1 = item * per_item, min(n_blocks, (item + 1) * per_item)
        lo, hi = b0 * block_size, min(param.size, b1 * block_size)
        _rmsprop_int8_serial(param[lo:hi], grad[lo:hi], square_avg[lo:hi], square_avg_absmax[b0:b1], lr, beta,
                             one_minus_beta, eps, weight_decay, estimate, block_size, unsigned_entries)


@_lowbit_kernel(parallel=True)
def _adam_int8_parallel(param, grad, exp_avg, exp_avg_absmax, exp_avg_sq, exp_avg_sq_absmax, beta1, one_minus_beta1,
                        beta2, one_minus_beta2, eps, weight_decay, decay, step_size, inv_sqrt_bias_correction2,
                        estimate, block_size, signed_entries, unsigned_entries):
    per_item = max(1, _BLOCK // block_size)
    n_blocks = exp_avg_absmax.size
    for item in prange((n_blocks + per_item - 1) // per_item):
        b0, b1 = item * per_item, min(n_blocks, (item + 1) * per_item)
        lo, hi = b0 * block_size, min(param.size, b1 * block_size)
        _adam_int8_serial(param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_absmax[b0:b1], exp_avg_sq[lo:hi],
                          exp_avg_sq_absmax[b0:b1], beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay,
                          decay, step_size, inv_sqrt_bias_correction2, estimate, block_size, signed_entries,
                          unsigned_entries)


# ---- launching the low-bit kernels ----------------------------------------------------------------

# (rule, state dtype) -> (serial, parallel, is each stored moment signed)
_LOWBIT_RULES: dict[tuple[str, str], tuple[Callable, Callable, tuple[bool, ...]]] = {
    ("sgd", "bfloat16"): (_sgd_bfloat16_serial, _sgd_bfloat16_parallel, (True,)),
    ("momentum", "bfloat16"): (_momentum_bfloat16_serial, _momentum_bfloat16_parallel, (True,)),
    ("rmsprop", "bfloat16"): (_rmsprop_bfloat16_serial, _rmsprop_bfloat16_parallel, (False,)),
    ("adam", "bfloat16"): (_adam_bfloat16_serial, _adam_bfloat16_parallel, (True, False)),
    ("adamw", "bfloat16"): (_adam_bfloat16_serial, _adam_bfloat16_parallel, (True, False)),
    ("sgd", "int8"): (_sgd_int8_serial, _sgd_int8_parallel, (True,)),
    ("momentum", "int8"): (_momentum_int8_serial, _momentum_int8_parallel, (True,)),
    ("rmsprop", "int8"): (_rmsprop_int8_serial, _rmsprop_int8_parallel, (False,)),
    ("adam", "int8"): (_adam_int8_serial, _adam_int8_parallel, (True, False)),
    ("adamw", "int8"): (_adam_int8_serial, _adam_int8_parallel, (True, False)),
}
_STORED = {"bfloat16": np.uint16, "int8": np.uint8}


@functools.cache
def _codec_tables(signs: tuple[bool, ...]) -> tuple[np.ndarray, ...]:
    """The encoding table of each distinct sign, in the kernels' argument order (signed first, as Adam's)."""
    return tuple(lowbit.encoding_table(signed) for signed in sorted(set(signs), reverse=True))


def _check_lowbit(rule: str, state_dtype: str, arrays: Sequence[np.ndarray], block_size: int) -> tuple:
    """1-D views of param, grad and the stored state, after checking dtypes, sizes and layout."""
    name = f"{rule} kernel ({state_dtype} state)"
    param = arrays[0]
    if not isinstance(param, np.ndarray) or param.dtype != np.float32:
        raise ValueError(f"{name}: param must be a float32 numpy array, got {type(param).__name__} "
                         f"{getattr(param, 'dtype', '')}")
    n = param.size
    if state_dtype == "int8":
        if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1:
            raise ValueError(f"{name}: block_size must be an int >= 1, got {block_size!r}")
        n_moments = (len(arrays) - 2) // 2
        expected = [("param", np.float32, n), ("grad", np.float32, n)]
        for k in range(n_moments):
            expected += [(f"moment {k} codes", np.uint8, n),
                         (f"moment {k} absmax", np.float32, lowbit.n_blocks(n, block_size))]
    else:
        expected = [("param", np.float32, n), ("grad", np.float32, n)] + [
            (f"moment {k} words", np.uint16, n) for k in range(len(arrays) - 2)]
    if len(arrays) != len(expected):
        raise ValueError(f"{name}: expected {len(expected)} arrays, got {len(arrays)}")
    flat = []
    for (label, dtype, size), a in zip(expected, arrays):
        if not isinstance(a, np.ndarray) or a.dtype != dtype or a.size != size:
            raise ValueError(f"{name}: {label} must be a numpy array of {size} {np.dtype(dtype)} values, got "
                             f"{type(a).__name__} {getattr(a, 'shape', '')} {getattr(a, 'dtype', '')}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"{name}: {label} of shape {a.shape} must be C-contiguous and writeable")
        flat.append(a.reshape(-1))
    return tuple(flat)


def bind_lowbit(rule: str, state_dtype: str, arrays: Sequence[np.ndarray],
                block_size: int = lowbit.BLOCK_SIZE) -> Callable[..., None]:
    """`rule`'s update with its state stored as `state_dtype`, on fixed arrays (as `bind`).

    bfloat16 arrays: param, grad, then one uint16 array per moment. int8: param, grad, then per
    moment its uint8 codes and float32 absmax per block.
    """
    flat = _check_lowbit(rule, state_dtype, arrays, block_size)
    serial, parallel, signs = _LOWBIT_RULES[(rule, state_dtype)]
    kernel = parallel if flat[0].size >= PARALLEL_THRESHOLD else serial
    scalars = _RULES[rule][2]
    extra = (int(block_size), *_codec_tables(signs)) if state_dtype == "int8" else ()
    entry = None

    def update(**hyper: float) -> None:
        nonlocal entry
        if rule == "sgd" and not hyper["momentum"]:
            raise ValueError(f"sgd kernel ({state_dtype} state): momentum must be > 0 to have state, "
                             f"got {hyper['momentum']}")
        values = scalars(0, **hyper)  # size 0: estimate whenever eps allows; these loops are not memory-bound
        if entry is None:
            if kernel is parallel:
                _start_threads()  # passive waiting, as for the other parallel kernels
            flags = tuple(isinstance(s, bool) for s in values)
            signature = tuple(numba.typeof(a) for a in flat) + tuple(
                numba.boolean if flag else numba.float32 for flag in flags) + tuple(numba.typeof(a) for a in extra)
            entry = _compile(kernel, signature)
        entry(*flat, *values, *extra)

    update.kernel = kernel  # type: ignore[attr-defined]
    return update


def quantize_blockwise(x: np.ndarray, signed: bool, block_size: int = lowbit.BLOCK_SIZE) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """Fused `lowbit.quantize_blockwise`: (uint8 codes, float32 absmax per block) by the table encoder."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    codes = np.empty(x.size, np.uint8)
    absmax = np.empty(lowbit.n_blocks(x.size, block_size), np.float32)
    _quantize_serial(x, codes, absmax, block_size, bool(signed), lowbit.encoding_table(bool(signed)))
    return codes, absmax


def dequantize_blockwise(codes: np.ndarray, absmax: np.ndarray, signed: bool,
                         block_size: int = lowbit.BLOCK_SIZE) -> np.ndarray:
    """Fused `lowbit.dequantize_blockwise`: map[code] * absmax of the code's block."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1)
    out = np.empty(codes.size, np.float32)
    _dequantize_serial(codes, np.ascontiguousarray(absmax, np.float32), out, block_size, bool(signed))
    return out


def _lowbit_public(rule: str, state_dtype: str) -> Callable[..., None]:
    def update(param, grad, *states, **hyper):
        block_size = hyper.pop("block_size", lowbit.BLOCK_SIZE) if state_dtype == "int8" else lowbit.BLOCK_SIZE
        bind_lowbit(rule, state_dtype, (param, grad, *states), block_size)(**hyper)

    reference = getattr(lowbit, f"{rule}_{state_dtype}")
    update.__name__ = reference.__name__
    update.__doc__ = f"Fused `lowbit.{reference.__name__}`: decode, update and re-encode in one pass."
    return update


sgd_bfloat16 = _lowbit_public("sgd", "bfloat16")
momentum_bfloat16 = _lowbit_public("momentum", "bfloat16")
rmsprop_bfloat16 = _lowbit_public("rmsprop", "bfloat16")
adam_bfloat16 = _lowbit_public("adam", "bfloat16")
adamw_bfloat16 = _lowbit_public("adamw", "bfloat16")
sgd_int8 = _lowbit_public("sgd", "int8")
momentum_int8 = _lowbit_public("momentum", "int8")
rmsprop_int8 = _lowbit_public("rmsprop", "int8")
adam_int8 = _lowbit_public("adam", "int8")
adamw_int8 = _lowbit_public("adamw", "int8")
