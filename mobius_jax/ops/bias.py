"""A bias add whose gradient runs as a matrix product (fast on XLA:CPU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


@jax.custom_vjp
def add_bias(x: Array, bias: Array) -> Array:
  """x + bias over the last axis: x `[..., F]`, bias `[F]` → `[..., F]`.

  The same values and gradients as `x + bias`, but the bias gradient, a sum over all rows, is
  taken as the product `ones @ dy` rather than as a reduction: XLA:CPU (jax 0.10.2) ran the
  reduction over a masked-LM's `[1024, 30522]` logits 27× slower than the product (117 ms
  against 4.3 ms; a quarter of a bert-tiny step with logits at every position).
  """
  return x + bias.astype(x.dtype)


def _forward(x, bias):
  return add_bias(x, bias), bias


def _backward(bias, dy):
  rows = dy.reshape(-1, dy.shape[-1])
  ones = jnp.ones(rows.shape[0], rows.dtype)
  dbias = jnp.dot(ones, rows, preferred_element_type=jnp.float32)
  return dy, dbias.astype(bias.dtype)


add_bias.defvjp(_forward, _backward)
