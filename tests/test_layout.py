"""The shape of the code, read from its imports (README, "Layout").

Stages never import stages; models import neither data nor stages; nothing
in train/ is imported outside training; reading a dataset needs no import of
the builder or the building code; no file imports main or prepare; and
there is no import cycle between files or between folders.
"""

import ast
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ('mirai_jax', 'tfds_builders')
# What each stage of main.py runs (and `python -m mirai_jax.prepare`).
STAGES = ('mirai_jax.dataset', 'mirai_jax.preview', 'mirai_jax.tokenize',
          'mirai_jax.evaluate', 'mirai_jax.predict', 'mirai_jax.report',
          'mirai_jax.train.tokenizer', 'mirai_jax.train.transformer',
          'mirai_jax.train.baseline')
ENTRY_POINTS = ('mirai_jax.main', 'mirai_jax.prepare')
# Only entry points reach these: they know every stage.
ENTRY_HELPERS = ('mirai_jax.checks',)


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for package in PACKAGES:
    for path in (ROOT / package).rglob('*.py'):
      name = '.'.join(path.relative_to(ROOT).with_suffix('').parts)
      out[name.removesuffix('.__init__')] = path
  return out


MODULES = _modules()


def _resolve(name: str) -> str:
  """The project module `name` is (or lies in), or '' outside the project."""
  while name and name not in MODULES:
    name = name.rpartition('.')[0]
  return name


def _imports(name: str) -> set[str]:
  path = MODULES[name]
  package = name if path.name == '__init__.py' else name.rpartition('.')[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out |= {_resolve(a.name) for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        up = package
        for _ in range(node.level - 1):
          up = up.rpartition('.')[0]
        base = f'{up}.{base}' if base else up
      for a in node.names:
        full = f'{base}.{a.name}'
        out.add(full if full in MODULES else _resolve(base))
  out.discard('')
  out.discard(name)
  # A package's __init__ that re-exports its own modules is not a cycle.
  return {m for m in out if not name.startswith(m + '.')}


GRAPH = {name: _imports(name) for name in MODULES}


def _in(name: str, *packages: str) -> bool:
  return any(name == p or name.startswith(p + '.') for p in packages)


def _folder(name: str) -> str:
  """The folder a module counts in: its sub-package, or the module itself
  for the files at the root of mirai_jax (each is its own room)."""
  parts = name.split('.')
  return '.'.join(parts[:2]) if len(parts) > 2 or (
      len(parts) == 2 and (ROOT / parts[0] / parts[1]).is_dir()) or (
          parts[0] != 'mirai_jax') else name


def _cycle(graph: dict[str, set[str]]) -> list[str]:
  """One import cycle of `graph`, or []."""
  state, stack = {}, []

  def visit(n):
    state[n] = 1
    stack.append(n)
    for m in sorted(graph.get(n, ())):
      if state.get(m) == 1:
        return stack[stack.index(m):] + [m]
      if m not in state:
        found = visit(m)
        if found:
          return found
    stack.pop()
    state[n] = 2
    return []

  for n in sorted(graph):
    if n not in state:
      found = visit(n)
      if found:
        return found
  return []


def test_the_graph_sees_the_imports():
  # The rules below would pass on an empty graph: make sure it is read.
  assert len(MODULES) > 40
  assert 'mirai_jax.inference' in GRAPH['mirai_jax.evaluate']
  assert 'mirai_jax.build.clips' in GRAPH[
      'tfds_builders.anime_clips.anime_clips_dataset_builder']
  assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
  assert _folder('mirai_jax.train.loop') == 'mirai_jax.train'
  assert _folder('mirai_jax.workdir') == 'mirai_jax.workdir'


def test_no_import_cycle_between_files():
  assert _cycle(GRAPH) == []


def test_no_import_cycle_between_folders():
  folders = {}
  for name, deps in GRAPH.items():
    here = _folder(name)
    folders.setdefault(here, set()).update(
        _folder(d) for d in deps if _folder(d) != here)
  assert _cycle(folders) == []


@pytest.mark.parametrize('stage', STAGES)
def test_a_stage_imports_no_other_stage(stage):
  assert not GRAPH[stage] & (set(STAGES) | set(ENTRY_POINTS) |
                             set(ENTRY_HELPERS))


def test_nothing_imports_an_entry_point():
  for name, deps in GRAPH.items():
    assert not deps & set(ENTRY_POINTS), name
    if name not in ENTRY_POINTS:
      assert not deps & set(ENTRY_HELPERS), name


def test_models_import_neither_data_nor_stages():
  for name, deps in GRAPH.items():
    if _in(name, 'mirai_jax.models'):
      bad = {d for d in deps if _in(d, 'mirai_jax.data', 'mirai_jax.build',
                                    'mirai_jax.train', 'tfds_builders')}
      assert not bad | (deps & set(STAGES)), name


def test_training_code_is_imported_by_training_only():
  for name, deps in GRAPH.items():
    if _in(name, 'mirai_jax.train') or name in ENTRY_POINTS + ENTRY_HELPERS:
      continue
    assert not {d for d in deps if _in(d, 'mirai_jax.train')}, name


def test_reading_data_needs_no_builder_and_no_building_code():
  reading = [n for n in GRAPH if _in(n, 'mirai_jax.data')]
  assert reading
  for name in reading:
    bad = {d for d in GRAPH[name] if _in(d, 'mirai_jax.build', 'tfds_builders')}
    assert not bad, name


def test_the_builder_depends_on_building_code_only():
  for name, deps in GRAPH.items():
    if _in(name, 'tfds_builders'):
      assert not deps & (set(STAGES) | {'mirai_jax.workdir',
                                        'mirai_jax.inference'}), name
    if _in(name, 'mirai_jax.build'):
      assert not {d for d in deps if _in(d, 'tfds_builders')}, name


def test_inference_restores_without_training_code():
  # evaluate, predict and tokenize load models through inference.py.
  for stage in ('mirai_jax.evaluate', 'mirai_jax.predict',
                'mirai_jax.tokenize'):
    assert 'mirai_jax.inference' in GRAPH[stage]
  seen, todo = set(), ['mirai_jax.inference']
  while todo:
    n = todo.pop()
    if n not in seen:
      seen.add(n)
      todo += GRAPH[n]
  assert not {n for n in seen if _in(n, 'mirai_jax.train')}


def test_every_module_says_what_it_holds():
  for name, path in MODULES.items():
    if path.name == '__init__.py' and not path.read_text().strip():
      continue
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f'{os.path.relpath(path, ROOT)} has no docstring'
