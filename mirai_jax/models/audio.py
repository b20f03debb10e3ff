"""Audio front end and encoder, aligned with the tokenizer's latent time steps.

PCM (B, S) int16 -> log-mel (B, M, n_mels), computed on the accelerator with
`jax.scipy.signal.stft` -> a small 1-D conv encoder -> one feature vector per
latent time step (B, T, D): every mel frame is averaged into the latent step
whose time span holds its centre. The transformer adds the feature of step t
to every token it predicts at step t, so alignment is given by construction
instead of being learned through cross-attention (and the KV cache is
unchanged by the audio).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int,
                   fmin: float = 40.0, fmax: float | None = None) -> np.ndarray:
  """(n_fft // 2 + 1, n_mels) triangular filters on the HTK mel scale.

  Written out (15 lines) rather than importing librosa, whose numba/scipy
  stack would be the only reason to install it.
  """
  fmax = fmax or sample_rate / 2
  mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
  hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
  edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
  freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
  lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
  up = (freqs[:, None] - lo) / np.maximum(mid - lo, 1e-6)
  down = (hi - freqs[:, None]) / np.maximum(hi - mid, 1e-6)
  return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(pcm: jax.Array, sample_rate: int, n_fft: int = 512,
            hop: int = 160, n_mels: int = 64) -> jax.Array:
  """int16 or float PCM (B, S) -> log-mel (B, S // hop + 1, n_mels).

  Mel frame m is centred on sample m * hop.
  """
  x = pcm.astype(jnp.float32)
  if pcm.dtype == jnp.int16:
    x = x / 32768.0
  _, _, spec = jax.scipy.signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop,
                                     boundary='even', padded=False)
  power = jnp.abs(spec) ** 2  # (B, n_fft // 2 + 1, M)
  mel = jnp.einsum('bfm,fn->bmn', power,
                   mel_filterbank(sample_rate, n_fft, n_mels))
  return jnp.log(mel + 1e-6)


def frame_to_step(num_mel: int, hop: int, sample_rate: int, fps: jax.Array,
                  temporal: int, steps: int) -> jax.Array:
  """(B, M, steps) averaging weights: mel frame m -> the latent step whose
  frames [t * temporal, (t + 1) * temporal) cover its centre (per-clip fps)."""
  centre = jnp.arange(num_mel) * hop / sample_rate  # seconds
  step = jnp.floor(centre[None] * fps[:, None] / temporal).astype(jnp.int32)
  onehot = jax.nn.one_hot(step, steps)  # frames past the last step drop out
  return onehot / jnp.maximum(onehot.sum(1, keepdims=True), 1.0)


class AudioEncoder(nn.Module):
  """log-mel -> per-latent-step features; also a learned 'no sound' vector."""
  features: int
  channels: int = 128
  layers: int = 2
  n_mels: int = 64
  n_fft: int = 512
  hop: int = 160
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, pcm, fps, sample_rate: int, temporal: int, steps: int,
               use_audio):
    """pcm (B, S); fps (B,) float; use_audio (B,) bool -> (B, steps, features)."""
    mel = log_mel(pcm, sample_rate, self.n_fft, self.hop, self.n_mels)
    # Fixed normalisation keeps features independent of the batch.
    x = (mel + 10.0) / 4.0
    x = nn.Dense(self.channels, dtype=self.dtype)(x)
    for _ in range(self.layers):  # +-2 mel frames (20 ms) of context each
      h = nn.LayerNorm(dtype=self.dtype)(x)
      h = nn.Conv(self.channels, (5,), padding='SAME', dtype=self.dtype)(h)
      x = x + nn.gelu(h)
    weights = frame_to_step(mel.shape[1], self.hop, sample_rate, fps,
                            temporal, steps)
    x = jnp.einsum('bmc,bmt->btc', x.astype(jnp.float32), weights)
    # Initialised at the scale of the token and position embeddings: a unit
    # scale drowned them, and the model first learnt to recognise each
    # training clip by its sound (validation loss rose with audio on).
    x = nn.Dense(self.features, dtype=self.dtype,
                 kernel_init=nn.initializers.normal(0.02))(nn.LayerNorm()(x))
    silent = self.param('silent', nn.initializers.normal(0.02),
                        (self.features,))
    return jnp.where(use_audio[:, None, None], x, silent.astype(x.dtype))
