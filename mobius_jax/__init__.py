"""mobius-jax: MöbiusAttention (Halacheva et al., arXiv 2409.12175) in JAX and Flax.

Shapes in docstrings, here and in `train/`, use one set of letters:

  B batch          L length (tokens)      T, S query and key/value length (self-attention: L)
  N heads          H head dim (real)      C complex dims of a head (a Möbius layer's heads: C = H)
  D model width    E embedding width      F feed-forward width
  V vocabulary     P selected positions   K labels    M Möbius heads of a layer

A complex array is a `Pair` `(real, imag)` of real arrays of one shape; a Möbius map array is
`MapCoefficients` `(a, b, c, d)` (`mobius_jax.ops.types`).
"""

from mobius_jax.ops import *  # noqa: F403  (the pure functions are the top-level API)
from mobius_jax.ops import __all__ as _ops_all

__version__ = "0.1.0"
__all__ = [*_ops_all, "__version__"]
