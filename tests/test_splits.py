"""Splits that cannot leak: filled small folders, kept splits, empty splits
named at start-up, dataset identities, and token sets swapped in whole."""

import json
import os
import random

import ml_collections
import numpy as np
import pytest

from mirai_jax import checkpoint
from mirai_jax import dataset
from mirai_jax import errors
from mirai_jax import workdir as workdir_lib
from mirai_jax.data import identity
from mirai_jax.data import splits
from mirai_jax.data import tokens


def _names(rng, n):
  return [f'Show {rng.randrange(10**6)} E{i:02d}.mkv' for i in range(n)]


def test_three_usable_episodes_fill_every_split():
  # The hash alone leaves a split empty in most small folders.
  empties = 0
  for trial in range(400):
    rng = random.Random(trial)
    names = _names(rng, rng.randint(3, 10))
    broken = set(rng.sample(names, rng.randint(0, len(names) - 3)))
    usable = set(names) - broken
    where, moves = splits.assign(names, usable)
    hashed = {splits.by_hash(n) for n in usable}
    empties += len(hashed) < 3
    for s in splits.WEIGHTS:
      assert any(where[n] == s for n in usable), (names, usable, where)
    assert len(moves) == sum(s not in hashed for s in splits.WEIGHTS)
  assert empties > 200


def test_adding_episodes_never_moves_one():
  for trial in range(300):
    rng = random.Random(trial)
    old = _names(rng, rng.randint(1, 8))
    new = old + _names(rng, rng.randint(1, 8))
    rng.shuffle(new)
    before, _ = splits.assign(old, set(old))
    after, _ = splits.assign(new, set(new), kept=before)
    assert {n: after[n] for n in old} == before


def test_big_folders_split_by_hash_alone():
  names = [f'ep{i:04d}.mkv' for i in range(500)]
  where, moves = splits.assign(names, set(names))
  assert moves == [] and all(where[n] == splits.by_hash(n) for n in names)


def _config(**fields):
  c = ml_collections.ConfigDict(dict(
      preview=dict(split='train'), evaluate=dict(split='test'),
      tokenizer=dict(eval_batch_size=8), transformer=dict(eval_batch_size=8)))
  for k, v in fields.items():
    section, name = k.split('__')
    c[section][name] = v
  return c


def test_stages_name_a_missing_split_and_a_batch_too_big():
  sizes = {'train': 100, 'validation': 5}
  with pytest.raises(errors.UserError) as e:
    splits.check(_config(), ('tokenizer', 'evaluate'), sizes, 'DATA')
  text = str(e.value)
  assert "--config.tokenizer.eval_batch_size=8 is more than the 5 clips" in text
  assert "evaluate needs the 'test' split, which has no clips in DATA" in text
  splits.check(_config(tokenizer__eval_batch_size=5), ('tokenizer',), sizes,
               'DATA')


def _ident(**splits_):
  return identity.make('64x64_t20', {'frames': 20}, splits_,
                       {e: 1 for eps in splits_.values() for e in eps}, None)


def test_identity_names_what_changed():
  old = _ident(train=['a', 'b'], validation=['c'], test=['d'])
  same = _ident(train=['b', 'a'], validation=['c'], test=['d'])
  identity.require_same(old, same, what='X', fix='')
  new = _ident(train=['a', 'e'], validation=['b'], test=['d'])
  with pytest.raises(identity.Changed) as e:
    identity.require_same(old, new, what='the token records', fix='Retokenize.')
  text = str(e.value)
  assert 'b (train -> validation)' in text and 'episodes added: e' in text
  assert 'episodes removed: c' in text and text.endswith('Retokenize.')


def test_a_checkpoint_of_another_dataset_is_refused(tmp_path):
  ckpt = checkpoint.Checkpoints(str(tmp_path / 'ckpt'), asynchronous=False)
  old = _ident(train=['a'], validation=['b'], test=['c'])
  ckpt.save(1, {'w': np.zeros(3)}, {checkpoint.DATASET_KEY: old})
  ckpt.require_dataset(1, old, 'tokenizer', 'fix')
  with pytest.raises(identity.Changed, match=r'step 1 .*a \(train -> test\)'):
    ckpt.require_dataset(1, _ident(train=['b'], validation=['c'], test=['a']),
                         'tokenizer', 'fix')
  ckpt.close()


def test_token_sets_swap_in_whole(tmp_path):
  root = str(tmp_path / 'tokens')

  def write(run_id, value, publish=True):
    out = tokens.new_set(root, run_id)
    os.makedirs(out)
    w = tokens.Writer(tokens.shard_path(out, 'train', 0, 1))
    w.write(dict(tokens=np.full(4, value, np.uint16), episode='e'))
    w.close()
    if publish:
      tokens.publish(root, out, dict(processes=1, run=run_id))

  write('a', 1)
  assert tokens.read_meta(root)['run'] == 'a'
  write('b', 2, publish=False)  # a run that died before its meta.json
  source = tokens.TokenSource(root, 'train')
  assert source.meta['run'] == 'a' and source[0]['tokens'][0] == 1
  write('c', 3)
  assert tokens.TokenSource(root, 'train')[0]['tokens'][0] == 3
  write('d', 4)
  # The set replaced stays for readers still on it; older ones go.
  assert sorted(os.listdir(root)) == ['CURRENT', 'set-c', 'set-d']


# ------------------------------------------------------------ built datasets


def _folder(tmp_path, episodes, names, extra=()):
  folder = tmp_path / 'episodes'
  folder.mkdir(exist_ok=True)
  for name, src in zip(names, episodes['paths']):
    if not (folder / name).exists():
      os.symlink(src, folder / name)
  for name in extra:
    (folder / name).write_bytes(b'\0' * 100)
  return str(folder)


def test_small_folder_builds_every_split_and_keeps_them(synthetic_episodes,
                                                       tmp_path):
  names = ['opening.mp4', 'middle.mp4', 'ending.mp4']
  assert len({splits.by_hash(n) for n in names}) < 3  # the hash alone fails
  folder = _folder(tmp_path, synthetic_episodes, names,
                   extra=['broken 1.mp4', 'broken 2.mp4', 'broken 3.mp4'])
  data_dir = str(tmp_path / 'data')
  first = dataset.build(folder, data_dir, workers=1)
  assert set(first.info.splits) == {'train', 'validation', 'test'}
  summary = dataset.summary(first)
  assert 'moved ' in summary and 'EMPTY' not in summary
  before = identity.of_builder(first)
  # One episode more: the old ones stay where they were, and the identity
  # says what changed.
  os.symlink(synthetic_episodes['paths'][0], os.path.join(folder, 'extra.mp4'))
  second = dataset.build(folder, data_dir, workers=1)
  kept = second.info.metadata['split_episodes']
  for split, eps in first.info.metadata['split_episodes'].items():
    assert set(eps) <= set(kept[split])
  assert identity.changes(before, identity.of_builder(second)) == [
      'episodes added: extra.mp4']


def test_empty_split_builds_the_others_and_stops_the_stage_that_needs_it(
    synthetic_episodes, tmp_path):
  folder = _folder(tmp_path, synthetic_episodes, ['a.mp4', 'b.mp4'],
                   extra=['broken.mp4'])
  split_file = tmp_path / 'splits.json'
  split_file.write_text(json.dumps({'train': ['a.mp4'], 'validation': ['b.mp4'],
                                    'test': ['broken.mp4']}))
  builder = dataset.build(folder, str(tmp_path / 'data'), workers=1,
                          split_file=str(split_file))
  assert set(builder.info.splits) == {'train', 'validation'}
  summary = dataset.summary(builder)
  assert "split 'test' is EMPTY: its episode(s) broken.mp4 gave no clips" in summary
  config = _config(tokenizer__eval_batch_size=1)
  workdir_lib.check_splits(config, ('tokenizer',), builder)
  with pytest.raises(errors.UserError, match="evaluate needs the 'test' split"):
    workdir_lib.check_splits(config, ('tokenizer', 'evaluate'), builder)
  # Another split file rebuilds the dataset (the episodes did not change).
  split_file.write_text(json.dumps({'train': ['a.mp4'], 'validation': [],
                                    'test': ['b.mp4']}))
  again = dataset.build(folder, str(tmp_path / 'data'), workers=1,
                        split_file=str(split_file))
  assert set(again.info.splits) == {'train', 'test'}
  assert identity.of_builder(again)['digest'] != identity.of_builder(
      builder)['digest']
  # Token records (and so the models) of the first build are refused now.
  config = ml_collections.ConfigDict(dict(data=dict(
      episodes=folder, data_dir=str(tmp_path / 'data'),
      builder_config='64x64_t20')))
  old_tokens = dict(dataset_identity=identity.of_builder(builder),
                    splits={'train': 1}, grid=[1, 1, 1], codebook_size=2,
                    clip_spec=dict(frames=20, sample_rate=16000))
  token_dir = workdir_lib.tokens_dir(str(tmp_path))
  tokens.write_meta(token_dir, old_tokens)
  with pytest.raises(identity.Changed,
                     match=r'moved between splits: b.mp4 \(validation -> test\)'
                     r'.*--mode=tokenize'):
    workdir_lib.token_set(config, str(tmp_path))
  tokens.write_meta(token_dir, dict(
      old_tokens, dataset_identity=identity.of_builder(again)))
  assert workdir_lib.token_set(config, str(tmp_path))[1].splits == {'train': 1}
