"""Stage 3: train the audio-conditioned transformer (`--mode=transformer`).

Reads the token records of `tokenize` (never pixels). Each step takes a
random window of `transformer.frames` latent steps from every clip, reads it
in the task's order (known tokens first) and trains next-token prediction
with the loss on the unknown tokens only. Audio is dropped for a fraction of
the clips so that one model also runs without sound.

Reads top to bottom: mesh, input, model and optimiser, shardings, update
step, checkpoint restore, validation, train loop. Everything lands in
<workdir>/transformer: checkpoints/, metrics.jsonl, tb/, validation.json.
Each validation also shows, in TensorBoard (SUMMARY_TAG), the first
`transformer.summary_clips` validation clips as the tokenizer's decoding of
their true tokens above the frames the EMA model generates for them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mirai_jax import errors
from mirai_jax import inference
from mirai_jax import mesh as mesh_lib
from mirai_jax import sample
from mirai_jax import storage
from mirai_jax import workdir as workdir_lib
from mirai_jax import xla_options
from mirai_jax.data import pipeline
from mirai_jax.data import tokens as tokens_lib
from mirai_jax.models import from_config
from mirai_jax.models import transformer as transformer_lib
from mirai_jax.train import loop
from mirai_jax.train import metrics as metrics_lib
from mirai_jax.train import optim


@flax.struct.dataclass
class State:
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  nonfinite: jax.Array  # steps whose loss or gradients were not finite


def audio_features(model, params, batch, records: tokens_lib.Records,
                   use_audio):
  """(B, clip latent steps, width) features of each clip's whole soundtrack."""
  return model.apply(params, batch['audio'], batch['fps'], records.sample_rate,
                     records.temporal, records.grid[0], use_audio,
                     method=model.audio_features)


def window(x: jax.Array, starts: jax.Array, frames: int) -> jax.Array:
  """Per-example window [start, start + frames) along axis 1."""
  return jax.vmap(lambda v, s: jax.lax.dynamic_slice_in_dim(v, s, frames, 0)
                  )(x, starts)


# Logits of one loss chunk stay under this many bytes (float32): the kny
# config's (64, 1024, 15360) logits would be 4 GB at once, and as much again
# for their gradient.
LOGITS_BUDGET = 2 ** 29


def loss_chunks(batch: int, tokens: int, codebook: int, chunk: int = 0) -> int:
  """How many chunks the predicted tokens' cross-entropy is computed in:
  `chunk` tokens each when given, else the fewest whose logits fit
  LOGITS_BUDGET (1 for small models: the plain computation)."""
  if chunk:
    per = min(chunk, tokens)
  else:
    per = max(1, LOGITS_BUDGET // (4 * batch * codebook))
  n = -(-tokens // min(per, tokens))
  while tokens % n:  # equal chunks
    n += 1
  return n


def cross_entropy(model, params, x, above, targets, chunks: int):
  """Summed cross-entropy and correct count of `targets` (B, M) given the
  final hidden states `x` (B, M, width) and the inputs' hinted tokens
  `above` (B, M, 2). With chunks > 1 the output layer runs on one slice of
  the tokens at a time under jax.checkpoint, so only one slice's logits
  exist at a time, forward and backward."""
  def one(x, a, t):
    logits = model.apply(params, x, a, method=model.logits)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, t)
    return jnp.sum(ce), jnp.sum(jnp.argmax(logits, -1) == t)

  if chunks == 1:
    return one(x, above, targets)
  b, m, d = x.shape
  xs = x.reshape(b, chunks, m // chunks, d).swapaxes(0, 1)
  ts = targets.reshape(b, chunks, m // chunks).swapaxes(0, 1)
  hs = above.reshape(b, chunks, m // chunks, -1).swapaxes(0, 1)

  def body(carry, xt):
    ce, right = jax.checkpoint(one)(*xt)
    return (carry[0] + ce, carry[1] + right), None

  (ce, right), _ = jax.lax.scan(body, (jnp.zeros((), jnp.float32),
                                       jnp.zeros((), jnp.int32)), (xs, hs, ts))
  return ce, right


def loss_fn(model, params, batch, records, order, starts, use_audio, *,
            train=False, rng=None, shuffle_audio=False, chunk: int = 0):
  """Mean cross-entropy and accuracy over the unknown tokens of the windows.

  The output layer and the loss run on the predicted positions only (the
  known context needs no logits), in chunks (`loss_chunks`).
  """
  frames = model.grid[0]
  feats = audio_features(model, params, batch, records, use_audio)
  if shuffle_audio:  # each clip gets the soundtrack of another clip
    feats = jnp.roll(feats, feats.shape[0] // 2, axis=0)
  seq = order.to_sequence(window(batch['tokens'], starts, frames))
  inputs = transformer_lib.inputs(seq, order, model.codebook_size)
  x = model.apply(params, *inputs, window(feats, starts, frames), train=train,
                  rngs={'dropout': rng} if train else None, method=model.hidden)
  k = order.num_known
  targets = seq[:, k:]
  n = targets.size
  chunks = loss_chunks(x.shape[0], targets.shape[1], model.codebook_size, chunk)
  ce, right = cross_entropy(model, params, x[:, k:], inputs[3][:, k:],
                            targets, chunks)
  return ce / n, right / n


def setup(config, records: tokens_lib.Records):
  """(model, order, optimiser, make_state)."""
  model = from_config.transformer(config, records.grid, records.codebook_size)
  order = from_config.order(config, records.grid)
  tx = optim.optimizer(config.transformer)

  def make_state(rng):
    params = from_config.init_transformer(
        model, order, rng, audio_len=records.audio_len,
        sample_rate=records.sample_rate, temporal=records.temporal,
        clip_steps=records.grid[0])
    return State(step=jnp.zeros((), jnp.int32), params=params,
                 opt_state=tx.init(params), ema_params=params,
                 nonfinite=jnp.zeros((), jnp.int32))

  return model, order, tx, make_state


def task_orders(config, records: tokens_lib.Records) -> dict:
  """{task: its reading order} of every task the config trains."""
  return {t: from_config.order(config, records.grid, t)
          for t in from_config.task_weights(config)}


def draw_task(rng, weights) -> jax.Array:
  """Index of the task a batch trains on, drawn with the given weights."""
  w = jnp.asarray(list(weights), jnp.float32)
  return jax.random.choice(rng, w.size, p=w / w.sum())


def make_update(config, model, order, tx, records: tokens_lib.Records):
  """The training step. With several tasks (transformer.tasks) each batch
  draws one and trains on its reading order (a lax.switch over the tasks:
  each order stays static, so the output layer still runs on that task's
  unknown tokens only); `order` is the main task's."""
  cfg = config.transformer
  base_rng = jax.random.key(config.seed)
  clip_steps = records.grid[0]
  weights = from_config.task_weights(config)
  orders = list(task_orders(config, records).values())

  def update(state: State, batch: dict) -> tuple[State, dict]:
    rng = jax.random.fold_in(base_rng, state.step)
    r_start, r_audio, r_drop = jax.random.split(rng, 3)
    b = batch['tokens'].shape[0]
    starts = jax.random.randint(r_start, (b,), 0, clip_steps - cfg.frames + 1)
    use_audio = batch['has_audio'] & (
        jax.random.uniform(r_audio, (b,)) >= cfg.audio_dropout)
    loss_of = lambda o: lambda p: loss_fn(
        model, p, batch, records, o, starts, use_audio, train=True,
        rng=r_drop, chunk=cfg.get('loss_chunk', 0))
    if len(orders) == 1:
      objective = loss_of(order)
    else:  # its own key: a single-task run draws exactly what it drew before
      task = draw_task(jax.random.fold_in(rng, len(orders)), weights.values())
      objective = lambda p: jax.lax.switch(task, [loss_of(o) for o in orders],
                                           p)
    (loss, acc), grads = jax.value_and_grad(objective,
                                            has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = state.replace(params=params, opt_state=opt_state,
                        ema_params=optim.ema(state.ema_params, params, cfg.ema))
    grad_norm = optax.tree.norm(grads)
    # The update too: a bad schedule or optimiser state poisons it on its own.
    ok = (jnp.isfinite(loss) & jnp.isfinite(grad_norm)
          & jnp.isfinite(optax.tree.norm(updates)))
    new = optim.keep_if_finite(ok, new, state)
    new = new.replace(step=state.step + 1,
                      nonfinite=state.nonfinite + (~ok).astype(jnp.int32))
    return new, dict(loss=loss, accuracy=acc, grad_norm=grad_norm,
                     lr=optim.schedule(cfg)(state.step))

  return update


# Truth is the tokenizer's decoding of the true tokens (the token records
# hold no pixels), the ceiling the prediction is measured against.
SUMMARY_TAG = 'val/prediction/truth_decoded_vs_predicted'


def summary_batch(cfg, token_dir: str, mesh):
  """(the first `cfg.summary_clips` validation clips as one global batch,
  padded to a multiple of the mesh's devices, their count), or None when off
  or the split is too short (validate() says so)."""
  n = min(cfg.summary_clips, cfg.eval_batch_size)
  if not n:
    return None
  rows = -(-n // mesh.size) * mesh.size  # <= eval_batch_size, a multiple too
  first = next(iter(tokens_lib.make_loader(
      token_dir, 'validation', shuffle=False, global_batch_size=rows,
      num_epochs=1)), None)
  return None if first is None else (pipeline.to_global(first, mesh), n)


def summary_decoder(config, workdir: str, records: tokens_lib.Records, mesh):
  """The trained tokenizer that decodes the summary's tokens, or None."""
  try:
    tok = inference.load_tokenizer(config, workdir, records.clip_spec, mesh,
                                   records.dataset_identity)
  except (FileNotFoundError, errors.UserError) as e:
    # Token records copied to a workdir without their tokenizer still train:
    # a picture is no reason to stop.
    why = str(e).splitlines()[0]
  else:
    if tok.model.codebook_size == records.codebook_size:
      return tok
    why = (f'its codebook has {tok.model.codebook_size} codes, the token '
           f'records {records.codebook_size}')
  if jax.process_index() == 0:
    print(f'transformer: no predicted frames in TensorBoard: {why}',
          flush=True)
  return None


def prediction_images(config, model, order, records: tokens_lib.Records,
                      tok: inference.Tokenizer, mesh):
  """jit of (EMA params, tokenizer variables, batch) -> uint8 (B, 2, frames,
  H, W, 3), replicated: per clip the decoding of its first window's true
  tokens, then of those the model generates from the known ones with the
  clip's sound (config.sample, as evaluate draws)."""
  frames, s = config.transformer.frames, config.sample

  def images(params, tok_vars, batch):
    true = batch['tokens'][:, :frames]
    feats = audio_features(model, params, batch, records,
                           batch['has_audio'])[:, :frames]
    pred = order.to_grid(sample.generate(
        model, params, sample.known_sequence(true, order), order, feats,
        jax.random.key(s.seed), temperature=s.temperature, top_k=s.top_k,
        top_p=s.top_p))
    both = jnp.stack([true, pred], 1)
    pixels = dataclasses.replace(tok, **tok_vars).decode(
        both.reshape(-1, *both.shape[2:]))
    pixels = jnp.round(pixels * 255).astype(jnp.uint8)
    return pixels.reshape(*both.shape[:2], *pixels.shape[1:])

  return jax.jit(images, out_shardings=mesh_lib.replicated(mesh),
                 compiler_options=xla_options.convolutions())


def prediction_summary(config, workdir: str, token_dir: str,
                       records: tokens_lib.Records, model, order, mesh):
  """EMA params -> uint8 (2 * clips, frames, H, W, 3), a truth row and a
  prediction row per clip; None when off. The clips, the tokenizer and the
  compiled function are made once, here; every process calls it."""
  clips = summary_batch(config.transformer, token_dir, mesh)
  tok = clips and summary_decoder(config, workdir, records, mesh)
  if not tok:
    return None
  batch, n = clips
  images = prediction_images(config, model, order, records, tok, mesh)
  tok_vars = dict(params=tok.params, state=tok.state)

  def summarise(params) -> np.ndarray:
    out = np.asarray(images(params, tok_vars, batch))[:n]
    return out.reshape(-1, *out.shape[2:])

  return summarise


def train_and_evaluate(config, workdir: str) -> dict:
  cfg = config.transformer
  out = workdir_lib.stage_dir(workdir, 'transformer')
  # One set of token records for the whole run, even if tokenize swaps in
  # a new one meanwhile.
  token_dir, records = workdir_lib.token_set(config, workdir, ('transformer',))
  data_identity = records.dataset_identity

  # ---------------------------------------------------------------- Mesh
  mesh = workdir_lib.make_mesh(config)
  for name in ('batch_size', 'eval_batch_size'):
    if getattr(cfg, name) % mesh.size:
      raise ValueError(f'config.transformer.{name}={getattr(cfg, name)} does '
                       f'not divide over the {mesh.size} devices of the mesh; '
                       f'use a multiple of {mesh.size}')

  # ------------------------------------------------------ Input pipeline
  train_batches = lambda start: iter(tokens_lib.make_loader(
      token_dir, 'train', global_batch_size=cfg.batch_size, seed=config.seed,
      worker_count=config.input.worker_count, start=start))

  # ---------------------------------------------- Model & optimiser
  model, order, tx, make_state = setup(config, records)

  # ------------------------------------ Shard, then restore or initialise
  state, start, ckpt, state_sharding = loop.start(
      'transformer', config, workdir, make_state, mesh, data_identity)

  # -------------------------------------------------------- Update step
  update = loop.jit_update(make_update(config, model, order, tx, records),
                           state_sharding, mesh)
  writer = metrics_lib.Writer(out, cfg.steps, 'transformer')
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  if jax.process_index() == 0:
    weights = from_config.task_weights(config)
    print(f'transformer: {n_params / 1e6:.2f}M parameters, {order.perm.size} '
          f'tokens per window ({order.num_known} known), tasks '
          + ', '.join(f'{t} {w / sum(weights.values()):.0%}'
                      for t, w in weights.items()) +
          f', attention {model.attention}, remat {model.remat}, '
          f'{"bf16" if cfg.mixed_precision else "float32"}, mesh '
          f'{dict(mesh.shape)}, start step {start}', flush=True)

  # ------------------------------------------------------------- Evals
  orders = task_orders(config, records)  # the main task first
  summarise = prediction_summary(config, workdir, token_dir, records, model,
                                 order, mesh)

  @jax.jit
  def val_losses(params, batch):
    """{task: losses with the clip's sound, another clip's, none}."""
    starts = jnp.zeros(batch['tokens'].shape[0], jnp.int32)
    on, off = batch['has_audio'], jnp.zeros_like(batch['has_audio'])
    out = {}
    for task, o in orders.items():
      run = lambda o=o, **kw: loss_fn(model, params, batch, records, o,
                                      starts, **kw)
      out[task] = dict(
          zip(('loss', 'accuracy'), run(use_audio=on)),
          loss_mismatched_audio=run(use_audio=on, shuffle_audio=True)[0],
          loss_no_audio=run(use_audio=off)[0])
    return out

  def validate(step, state):
    loader = tokens_lib.make_loader(token_dir, 'validation', shuffle=False,
                                    global_batch_size=cfg.eval_batch_size,
                                    num_epochs=1)
    sums = [val_losses(state.ema_params, pipeline.to_global(b, mesh))
            for b in itertools.islice(loader, cfg.eval_batches)]
    if not sums:
      raise ValueError('the validation split has fewer token records than '
                       f'one batch ({cfg.eval_batch_size}); lower '
                       'config.transformer.eval_batch_size')
    per = {t: {k: float(np.mean([s[t][k] for s in sums])) for k in sums[0][t]}
           for t in orders}
    main = next(iter(orders))
    # The main task's figures at the top (val/loss, ...), the others by name.
    writer.scalars(step, {f'val/{k}' if t == main else f'val/{t}/{k}': v
                          for t, r in per.items() for k, v in r.items()})
    if summarise:
      writer.video(step, SUMMARY_TAG, summarise(state.ema_params))
    result = dict(step=step, **per[main])
    if len(per) > 1:
      result['tasks'] = per
    if jax.process_index() == 0:
      storage.write_text(os.path.join(out, 'validation.json'),
                         json.dumps(result, indent=1))
    for t, r in per.items():
      print(f"transformer val step {step}"
            f"{f' ({t})' if len(per) > 1 else ''}: loss {r['loss']:.4f} "
            f"(mismatched audio {r['loss_mismatched_audio']:.4f}, no audio "
            f"{r['loss_no_audio']:.4f}), accuracy {r['accuracy']:.3f}",
            flush=True)
    return result

  # -------------------------------------------------------- Train loop
  return loop.run('transformer', config, state=state, start=start,
                  update=update, data_iter=train_batches(start), mesh=mesh,
                  ckpt=ckpt, writer=writer, evaluate=validate,
                  show=('loss', 'accuracy'), dataset=data_identity)
