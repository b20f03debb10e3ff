"""A perceptual (feature) distance whose weights come from a file the user gives.

Nothing is downloaded: the user converts the network they trust (VGG16's
first blocks, as in LPIPS, or any other) into an .npz with, for each layer i
in order, `conv{i}/kernel` (3, 3, in, out; HWIO) and `conv{i}/bias` (out,),
plus `pool_after` (the layer indices followed by 2x2 max pooling) and
optionally `mean`/`std` (3,) for input normalisation of [0, 1] pixels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax import storage


def load(path: str, field: str = 'tokenizer.loss.perceptual_weights') -> dict:
  if not path:
    raise ValueError(f'config.{field} is empty: give the path of an .npz of '
                     'feature-network weights (see mirai_jax/models/perceptual.py)')
  if not storage.exists(path):
    raise FileNotFoundError(f'config.{field}={path!r}: no such file. Nothing is '
                            'downloaded; convert the weights to .npz (see '
                            'mirai_jax/models/perceptual.py) and give the path.')
  with np.load(storage.local_copy(path)) as f:
    data = dict(f)
  n = sum(1 for k in data if k.endswith('/kernel'))
  if n == 0:
    raise ValueError(f'config.{field}={path!r}: no `conv0/kernel` arrays inside')
  layers = [(jnp.asarray(data[f'conv{i}/kernel'], jnp.float32),
             jnp.asarray(data[f'conv{i}/bias'], jnp.float32)) for i in range(n)]
  return dict(layers=layers,
              pool_after=tuple(int(i) for i in data.get('pool_after', ())),
              mean=jnp.asarray(data.get('mean', np.zeros(3)), jnp.float32),
              std=jnp.asarray(data.get('std', np.ones(3)), jnp.float32))


def features(net: dict, images: jax.Array) -> list[jax.Array]:
  """images (N, H, W, 3) in [0, 1] -> unit-normalised feature maps."""
  x = (images - net['mean']) / net['std']
  out = []
  for i, (w, b) in enumerate(net['layers']):
    x = jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    x = jax.nn.relu(x + b)
    out.append(x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-8))
    if i in net['pool_after']:
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                                (1, 2, 2, 1), 'VALID')
  return out


def distance(net: dict, a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean over layers of the squared distance of normalised features."""
  fa, fb = features(net, a), features(net, b)
  return sum(jnp.mean(jnp.sum((x - y) ** 2, -1)) for x, y in zip(fa, fb)) / len(fa)
