"""The ops namespace of the augmentations and their stateless random draws, for tf.data and models.

The augmentation functions are written once, against `xp = namespace(tensor)`: `keras.ops` for
the tensors of the configured Keras backend (in a model, under JAX or TensorFlow), and Keras'
TensorFlow backend ops (the same functions, same signatures) for TensorFlow tensors under another
backend, as in a `tf.data` map under JAX (Keras' preprocessing layers switch the same way, through
`DynamicBackend`). `xp.uniform` / `xp.normal` / `xp.split` draw from a stateless int32 [2] seed
tensor: TensorFlow's stateless ops, or `keras.random` with the seed as the JAX key.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras.src.utils.backend_utils import DynamicBackend

_SEED_RANGE = 2**31 - 1


class Ops:
    """`keras.ops` of one backend, plus random draws from a stateless int32 [2] seed."""

    def __init__(self, backend: str):
        self.name = backend
        if backend == keras.backend.backend():
            self._sources = (keras.ops,)
        else:
            other = DynamicBackend(backend)
            self._sources = (other.numpy, other.math, other.core, other.nn)

    def __getattr__(self, name):
        for source in self._sources:
            if hasattr(source, name):
                value = getattr(source, name)
                setattr(self, name, value)
                return value
        raise AttributeError(f"{self.name} ops: no {name!r}")

    def seed(self, seed):
        """`seed` (any integer dtype, e.g. a SeedGenerator's state) as an int32 [2] stateless seed."""
        return self.cast(self.mod(seed, _SEED_RANGE), "int32")

    def _key(self, seed):
        return self.cast(seed, "uint32")

    def split(self, seed, n: int):
        """`n` independent stateless seeds ([n, 2] int32) from one."""
        if self.name == "tensorflow":
            return tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), n)
        return keras.random.randint((n, 2), 0, _SEED_RANGE, "int32", seed=self._key(seed))

    def uniform(self, seed, shape, lo: float = 0.0, hi: float = 1.0):
        """float32 uniform draws in [lo, hi)."""
        if self.name == "tensorflow":
            return tf.random.stateless_uniform(shape, tf.cast(seed, tf.int32), lo, hi)
        return keras.random.uniform(shape, lo, hi, "float32", seed=self._key(seed))

    def normal(self, seed, shape):
        """float32 standard normal draws."""
        if self.name == "tensorflow":
            return tf.random.stateless_normal(shape, tf.cast(seed, tf.int32))
        return keras.random.normal(shape, dtype="float32", seed=self._key(seed))


_NAMESPACES: dict[str, Ops] = {}


def namespace(x) -> Ops:
    """The ops for `x`: TensorFlow's for a TensorFlow tensor (a tf.data map under any backend),
    else the configured backend's (`keras.ops`)."""
    name = "tensorflow" if tf.is_tensor(x) else keras.backend.backend()
    if name not in _NAMESPACES:
        _NAMESPACES[name] = Ops(name)
    return _NAMESPACES[name]


def split_seed(seed, n: int):
    """`n` independent stateless seeds ([n, 2] int32) from one."""
    return namespace(seed).split(seed, n)


def batch_size(xp: Ops, x):
    """The batch dimension of `x`: an int, or a scalar tensor where TensorFlow does not know it."""
    return xp.shape(x)[0]


def coin(xp: Ops, seed, batch, prob: float):
    """(batch,) bool: True with probability `prob`, per example."""
    return xp.uniform(seed, [batch]) < prob


def column(xp: Ops, v, x):
    """(batch,) values shaped to broadcast over `x` and cast to its dtype."""
    return xp.reshape(xp.cast(v, x.dtype), [-1] + [1] * (len(x.shape) - 1))


def _gamma(xp: Ops, seed, shape, alpha: float, proposals: int = 16):
    """Gamma(alpha, 1) samples by Marsaglia-Tsang, vectorised over `proposals` tries (XLA-friendly).

    Shapes below 1 are boosted (Gamma(a) = Gamma(a + 1) * U^(1/a)). Each try is accepted with
    probability > 0.95, so all 16 fail with probability < 1e-20 (the sample is then d, near the mode).
    """
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    s = xp.split(seed, 3)
    x = xp.normal(s[0], [*shape, proposals])
    u = xp.uniform(s[1], [*shape, proposals], 1e-12, 1.0)
    v = xp.power(1.0 + c * x, 3.0)
    safe_v = xp.maximum(v, 1e-12)
    accept = (v > 0) & (xp.log(u) < 0.5 * x * x + d - d * safe_v + d * xp.log(safe_v))
    first = xp.argmax(xp.cast(accept, "int32"), axis=-1)
    chosen = xp.take_along_axis(safe_v, xp.expand_dims(first, -1), axis=-1)[..., 0]
    g = d * xp.where(xp.any(accept, axis=-1), chosen, 1.0)
    if alpha < 1.0:
        g = g * xp.power(xp.uniform(s[2], shape, 1e-12, 1.0), 1.0 / alpha)
    return g


def beta(seed, shape, alpha: float, xp: Ops | None = None):
    """Beta(alpha, alpha) samples of `shape`, XLA-compilable (`xp`: the seed's namespace by default)."""
    xp = xp or namespace(seed)
    s = xp.split(seed, 2)
    a, b = _gamma(xp, s[0], shape, alpha), _gamma(xp, s[1], shape, alpha)
    return a / xp.maximum(a + b, 1e-30)


def partners(seed, batch, xp: Ops | None = None):
    """(batch,) a random partner for each example, never itself when batch > 1 (one random cycle)."""
    xp = xp or namespace(seed)
    perm = xp.argsort(xp.uniform(seed, [batch]))
    return xp.take(xp.roll(perm, -1, axis=0), xp.argsort(perm), axis=0)
