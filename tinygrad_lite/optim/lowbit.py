"""Optimizer state in 16 and 8 bits, in plain numpy: the codecs and the reference update rules.

Two ways to keep a moment in fewer bytes than float32:

- **bfloat16**: the top 16 bits of the float32, kept as `uint16` words. Writing rounds to
  nearest, ties to even (a NaN stays a NaN); reading shifts the word back into the top half.
  8 bits of exponent, so nothing underflows that float32 keeps; 8 bits of precision.
- **int8, block-wise** (Dettmers et al. 2021, "8-bit Optimizers via Block-wise Quantization"):
  the buffer is cut into blocks of `block_size` values (256 by default). Each block keeps its
  absolute maximum as a float32 and each value as a `uint8` code: the index of the nearest
  entry of a 256-entry map after dividing by the absmax. The map is the paper's *dynamic
  tree*: after the sign bit, a run of zero bits picks the decade (10^0 ... 10^-6), a 1 ends it,
  and the remaining bits place the value linearly in [0.1, 1) of that decade. Big decades get
  many codes, tiny ones few, so small values keep their relative precision. First moments use
  the signed map; second moments, which are never negative, use the unsigned one, whose sign bit
  is one more fraction bit.

**The second-moment trap.** Nearest-code rounding sends a positive second moment that is tiny
next to its block's absmax to code 0, i.e. to exactly 0. If the first moment of that element
is not also 0, the next Adam update is lr * m_hat / (sqrt(0) + eps) ~ lr * m / eps, a step a
hundred million times too large with eps = 1e-8: a run on a quadratic ended 50x away from its
minimum. So a positive second moment is rounded to at least the smallest positive code
(`quantize_blockwise(..., signed=False)`), as bitsandbytes' encoder in effect does.

Each rule here decodes the state, runs the float32 rule of `functional.py` on it and encodes
the result: the readable meaning of the fused kernels in `kernels.py`, which have the same
signatures and must store the same state bit for bit. The kernels decode with the map itself
(`SIGNED_MAP[codes]`, by AVX-512 VBMI byte permutes where the CPU has them) and encode with
`encoding_table`, a constant-time replacement for the search in `quantize_blockwise`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from tinygrad_lite.optim import functional

BLOCK_SIZE = 256  # values per int8 block, as bitsandbytes
STATE_DTYPES = ("float32", "bfloat16", "int8")


# ---- bfloat16 --------------------------------------------------------------------------------


def bfloat16_encode(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 words (`uint16`), rounding to nearest, ties to even; NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # Adding 0x7FFF plus the kept part's lowest bit carries into the top half exactly when the
    # dropped half is above 0x8000, or equal to it with an odd kept part.
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    quiet_nan = (bits >> 16) | 0x0040  # keeps the sign; a nonzero mantissa, so still a NaN
    return np.where(np.isnan(x), quiet_nan, rounded).astype(np.uint16)


def bfloat16_decode(words: np.ndarray) -> np.ndarray:
    """bfloat16 words (`uint16`) -> float32, exactly."""
    return (np.asarray(words, dtype=np.uint32) << 16).view(np.float32)


# ---- the dynamic map ---------------------------------------------------------------------------


def dynamic_map(signed: bool) -> np.ndarray:
    """The 256 values of Dettmers et al.'s dynamic tree map, sorted: codes index into it.

    Signed: 0, 1 and +-127 values; unsigned: 0, 1 and 254 values. For the decade 10^-E
    (E = 0..6) the bits after the sign are E zeros, a 1, and F = 6 - E fraction bits (one more
    when unsigned); the 2^F values are the centres of 2^F equal bins of [0.1, 1], times 10^-E.
    """
    fraction_bits = 7 if not signed else 6
    positive = []
    for decade in range(7):
        bins = 2 ** (fraction_bits - decade)
        centres = 0.1 + 0.9 * (np.arange(bins) + 0.5) / bins
        positive.extend(10.0**-decade * centres)
    positive = np.array(positive)
    values = np.concatenate([-positive, positive] if signed else [positive])
    return np.sort(np.concatenate([values, [0.0, 1.0]])).astype(np.float32)


SIGNED_MAP = dynamic_map(signed=True)
UNSIGNED_MAP = dynamic_map(signed=False)
SIGNED_ZERO = int(np.flatnonzero(SIGNED_MAP == 0)[0])  # code of 0 in the signed map (127)


def _magnitudes(signed: bool) -> np.ndarray:
    """The map's non-negative values, ascending: what |x| / absmax is rounded to (sign apart)."""
    levels = SIGNED_MAP[SIGNED_ZERO:] if signed else UNSIGNED_MAP
    return np.ascontiguousarray(levels)


def _boundaries(levels: np.ndarray) -> np.ndarray:
    """Midpoints between neighbouring levels, in float32: a value >= boundary[j] rounds above level j."""
    return ((levels[:-1] + levels[1:]) / np.float32(2)).astype(np.float32)


# The constant-time encoder of the fused kernels. A bucket is the top 16 bits of the float32 |y|
# (exponent and 7 mantissa bits), so buckets are 1/128 of a binade wide, finer than the gap between
# any two midpoints of either map. Each bucket's entry holds k, the number of midpoints at or below
# the bucket's start, and the low 16 bits (minus 1) of the one midpoint inside it, if any: the code
# is k, plus 1 when |y|'s low 16 bits are above that. Buckets below the first clamp to bucket 0
# (no midpoint inside), values at or above 1 to the last. Same result as the search in
# `quantize_blockwise`, which the tests check.
_NEVER = 0xFFFF  # low 16 bits are never above this: no midpoint in the bucket


def _bucket_range() -> tuple[int, int]:
    """(first bucket, number of buckets): from just below the smallest midpoint of either map to 1.0."""
    smallest = min(_boundaries(_magnitudes(s))[0] for s in (True, False))
    first = (int(np.float32(smallest).view(np.uint32)) >> 16) - 1
    last = int(np.float32(1).view(np.uint32)) >> 16
    return first, last - first + 1


BUCKET_FIRST, N_BUCKETS = _bucket_range()


def encoding_table(signed: bool) -> np.ndarray:
    """One uint32 per bucket of |y|: (midpoints at or below its start) << 16 | (low bits of the midpoint inside) - 1."""
    bits = _boundaries(_magnitudes(signed)).view(np.uint32).astype(np.int64)
    starts = (BUCKET_FIRST + np.arange(N_BUCKETS, dtype=np.int64)) << 16
    below = np.searchsorted(bits, starts, side="right")
    inside = np.searchsorted(bits, starts + 0xFFFF, side="right") - below
    if inside.max() > 1:
        raise AssertionError("lowbit: a bucket holds two midpoints; use more mantissa bits per bucket")
    threshold = np.where(inside == 1, (bits[np.minimum(below, bits.size - 1)] & 0xFFFF) - 1, _NEVER)
    return ((below << 16) | threshold).astype(np.uint32)


def quantize_blockwise(x: np.ndarray, signed: bool, block_size: int = BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """float32 values -> (uint8 codes, float32 absmax per block), each value rounded to the nearest map entry.

    y = x * (1/absmax) per block (0 for an all-zero block); the code is the map entry nearest y,
    found by a search over the midpoints. Unsigned: a positive y never gets the code of 0
    (the second-moment trap, see the module docstring). A block holding NaN or inf has a NaN or
    inf absmax and decodes to non-finite values.
    """
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    n_blocks = -(-x.size // block_size)
    padded = np.zeros(n_blocks * block_size, np.float32)
    padded[:x.size] = x
    blocks = padded.reshape(n_blocks, block_size)
    absmax = np.abs(blocks).max(axis=1) if x.size else np.zeros(0, np.float32)
    safe = np.where(absmax == 0, np.float32(1), absmax)
    inverse = np.where(absmax == 0, np.float32(0), np.float32(1) / safe).astype(np.float32)
    with np.errstate(invalid="ignore"):  # inf * 0 in a block holding inf: documented non-finite
        y = (blocks * inverse[:, None]).reshape(-1)[:x.size]
    levels = _magnitudes(signed)
    k = np.searchsorted(_boundaries(levels), np.abs(y), side="right")
    if signed:
        codes = np.where(np.signbit(y), SIGNED_ZERO - np.minimum(k, SIGNED_ZERO), SIGNED_ZERO + k)
    else:
        codes = np.where(y > 0, np.maximum(k, 1), k)
    return codes.astype(np.uint8), absmax.astype(np.float32)


def dequantize_blockwise(codes: np.ndarray, absmax: np.ndarray, signed: bool,
                         block_size: int = BLOCK_SIZE) -> np.ndarray:
    """(uint8 codes, float32 absmax per block) -> float32: map[code] * absmax of the code's block."""
    table = SIGNED_MAP if signed else UNSIGNED_MAP
    scale = np.repeat(np.asarray(absmax, np.float32), block_size)[:codes.size]
    with np.errstate(invalid="ignore"):  # 0 * inf in a block whose absmax is inf
        return table[codes.reshape(-1)] * scale


def n_blocks(size: int, block_size: int = BLOCK_SIZE) -> int:
    """How many absmax values a buffer of `size` values has."""
    return -(-size // block_size)


# ---- the reference rules: decode, the float32 rule, encode -------------------------------------


def _bfloat16_rule(rule):
    def update(param, grad, *states, **hyper):
        decoded = [bfloat16_decode(s) for s in states]
        rule(param, grad, *decoded, **hyper)
        for stored, value in zip(states, decoded):
            stored[...] = bfloat16_encode(value)

    update.__name__ = f"{rule.__name__}_bfloat16"
    update.__doc__ = f"`functional.{rule.__name__}` with its state stored as bfloat16 words (uint16)."
    return update


def _int8_rule(rule, signs):
    def update(param, grad, *states, block_size=BLOCK_SIZE, **hyper):
        pairs = list(zip(states[0::2], states[1::2], signs))  # (codes, absmax, signed) per moment
        decoded = [dequantize_blockwise(c, a, s, block_size) for c, a, s in pairs]
        rule(param, grad, *decoded, **hyper)
        for (codes, absmax, signed), value in zip(pairs, decoded):
            codes[...], absmax[...] = quantize_blockwise(value, signed, block_size)

    update.__name__ = f"{rule.__name__}_int8"
    update.__doc__ = (f"`functional.{rule.__name__}` with each moment stored as (uint8 codes, float32 absmax "
                      "per block), signed map for first moments, unsigned for second moments.")
    return update


sgd_bfloat16 = _bfloat16_rule(functional.sgd)
momentum_bfloat16 = _bfloat16_rule(functional.momentum)
rmsprop_bfloat16 = _bfloat16_rule(functional.rmsprop)
adam_bfloat16 = _bfloat16_rule(functional.adam)
adamw_bfloat16 = _bfloat16_rule(functional.adamw)

sgd_int8 = _int8_rule(functional.sgd, (True,))
momentum_int8 = _int8_rule(functional.momentum, (True,))
rmsprop_int8 = _int8_rule(functional.rmsprop, (False,))
adam_int8 = _int8_rule(functional.adam, (True, False))
adamw_int8 = _int8_rule(functional.adamw, (True, False))


# ---- state records: what an optimizer stores per parameter, and conversions between formats ---------

# Whether each moment of functional.py's state records can be negative (signed map) or not (unsigned).
SIGNED_FIELDS = {"momentum_buffer": True, "velocity": True, "square_avg": False, "exp_avg": True, "exp_avg_sq": False}
ABSMAX_SUFFIX = "_absmax"
MIN_SIZE = 4096  # parameters with fewer values keep float32 state, as bitsandbytes' min_8bit_size


@functools.cache
def record(state_type: type, state_dtype: str) -> type:
    """The named record of `state_type` as stored: bfloat16 the same fields (uint16 words); int8 each
    moment's codes followed by `<moment>_absmax`, in the order the int8 kernels take them."""
    if state_dtype != "int8":
        return state_type
    fields = [name for moment in state_type._fields for name in (moment, moment + ABSMAX_SUFFIX)]
    return NamedTuple(f"{state_type.__name__}Int8", [(name, np.ndarray) for name in fields])


def init(state_type: type, param: np.ndarray, state_dtype: str, block_size: int = BLOCK_SIZE) -> tuple:
    """Zero state for `param` stored as `state_dtype` (int8: the code of 0 and an absmax of 0 per block)."""
    zeros = {name: np.zeros(param.shape, np.float32) for name in state_type._fields}
    return record(state_type, state_dtype)(**encode(zeros, state_dtype, block_size))


def encode(moments: dict[str, np.ndarray], state_dtype: str, block_size: int = BLOCK_SIZE) -> dict[str, np.ndarray]:
    """float32 moments (by field name) -> the arrays stored for `state_dtype`, shaped like the moments."""
    if state_dtype == "float32":
        return {name: np.asarray(value, np.float32) for name, value in moments.items()}
    out = {}
    for name, value in moments.items():
        value = np.asarray(value, np.float32)
        if state_dtype == "bfloat16":
            out[name] = bfloat16_encode(value).reshape(value.shape)
        else:
            codes, absmax = quantize_blockwise(value, SIGNED_FIELDS[name], block_size)
            out[name], out[name + ABSMAX_SUFFIX] = codes.reshape(value.shape), absmax
    return out


def decode(stored: dict[str, np.ndarray], names: tuple[str, ...],
           block_size: int = BLOCK_SIZE) -> dict[str, np.ndarray]:
    """Stored moments in any format -> float32, recognised per moment: `<name>_absmax` beside it means int8
    (with `block_size`), uint16 words bfloat16, floats themselves."""
    out = {}
    for name in names:
        value = np.asarray(stored[name])
        if name + ABSMAX_SUFFIX in stored:
            out[name] = dequantize_blockwise(value, np.asarray(stored[name + ABSMAX_SUFFIX], np.float32),
                                             SIGNED_FIELDS[name], block_size).reshape(value.shape)
        elif value.dtype == np.uint16:
            out[name] = bfloat16_decode(value)
        else:
            out[name] = value
    return out
