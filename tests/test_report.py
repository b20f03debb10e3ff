"""report.py: the offline HTML report of a fake evaluate folder, parsed and,
where Chromium is installed, drawn by a headless browser."""

import html.parser
import importlib.util
import json
import os
import re

import fsspec
import ml_collections
import numpy as np
from PIL import Image
import pytest

from mirai_jax import errors
from mirai_jax import render
from mirai_jax import report
from mirai_jax import storage

FRAMES = 4
SCREENSHOT = os.path.join(os.path.dirname(__file__), '..', 'bench',
                          'report_screenshot.py')


def _method(psnr, ssim, mse, n=2, **extra):
  """One method's entry as evaluate writes it (per frame: around the mean)."""
  entry = dict(psnr=psnr, ssim=ssim, mse=mse)
  for k, v in dict(psnr=psnr, ssim=ssim, mse=mse, **extra).items():
    entry[k] = v
    entry[f'{k}_per_frame'] = [round(v * (1 + 0.01 * i), 5) for i in range(n)]
  return entry


def _rollout(psnr, drift, mse=0.004):
  """A rollout's entry: per frame only, the PSNR at each multiple and the
  MSE at the last."""
  per = {k: v for k, v in _method(psnr, 0.9, mse, n=4).items()
         if k.endswith('_per_frame')}
  return dict(per, psnr_drift_db_per_s=drift, psnr_at_1x=psnr,
              psnr_at_2x=psnr - 1, mse_at_2x=mse)


def _task(task, methods, **extra):
  return dict(task=task, split='test', clips=8, context_frames=2,
              predicted_frames=2, tokenizer_step=1500, transformer_step=400,
              sample=dict(seed=0, temperature=0.0), seconds=1.0,
              methods=methods, **extra)


def _jobs() -> dict:
  """file name -> JSON, shaped as evaluate and rollouts write them."""
  note = "LPIPS and FVD: pip install -e '.[metrics]'"
  return {
      # The reconstruction is best everywhere: it must never be bold.
      'test.json': _task('continue', {
          'copy_last': _method(24.0, 0.90, 0.0040, mouth_mse=0.050),
          'reconstruction': _method(30.0, 0.99, 0.0010, mouth_mse=0.010),
          'audio': _method(25.5, 0.93, 0.0030, mouth_mse=0.030),
          'mismatched_audio': _method(25.0, 0.92, 0.0035, mouth_mse=0.040),
      }),
      'test_interpolate.json': _task('interpolate', {
          'crossfade': _method(28.0, 0.95, 0.0020),
          'reconstruction': _method(31.0, 0.99, 0.0009),
          'audio': _method(27.0, 0.96, 0.0025),
      }, given_frames=[0, 1, 3], metrics_note=note, paste='residual',
                                      paste_threshold=0.15),
      'test_outpaint.json': dict(_task('outpaint', {
          'edge_replication': _method(20.0, 0.80, 0.0100, lpips=0.30),
          'audio': _method(22.0, 0.85, 0.0080, lpips=0.20),
      }, given_columns=[4, 12], width=16, metrics_note=note),
          context_frames=0),
      'test_rollout.json': dict(
          split='test', shots=3, windows=2, training_horizon_frames=2,
          horizon_frames=4, fps='24000/1001', shots_per_frame=[3, 3, 3, 2],
          seconds=1.0, methods={
              k: _rollout(p, d, e) for k, p, d, e in (
                  ('model', 23.0, -1.5, 0.0041),
                  ('copy_last', 24.0, -3.0, 0.0043))}),
      # Another split's file, never read for split 'test'.
      'val.json': _task('continue', {'audio': _method(1.0, 0.1, 0.9)}),
  }


def _clips(names, rng) -> dict:
  """<..>_examples.npz: 3 clips of 4 frames 16x16 per method, the truth."""
  out = {k: rng.integers(0, 256, (3, FRAMES, 16, 16, 3), dtype=np.uint8)
         for k in ['real', *names]}
  out['given'] = np.array([True, True, False, False])
  return out


def _evaluate_folder(ev: str, jobs: dict) -> None:
  """What evaluate leaves in <workdir>/evaluate for `jobs`."""
  os.makedirs(ev)
  for name, result in jobs.items():
    with open(os.path.join(ev, name), 'w', encoding='utf-8') as f:
      json.dump(result, f)
  rng = np.random.default_rng(0)
  for stem in ('test', 'test_interpolate'):
    if f'{stem}.json' in jobs:
      names = list(jobs[f'{stem}.json']['methods'])[::-1]  # the JSON's wins
      np.savez(os.path.join(ev, f'{stem}_examples.npz'), **_clips(names, rng))
  if 'test_outpaint.json' in jobs:
    # A workdir evaluated before the npz: the old GIF stands in.
    render.write_gif(os.path.join(ev, 'test_outpaint_examples.gif'),
                     np.zeros((FRAMES, 8, 8, 3), np.uint8))


CONFIG = ml_collections.ConfigDict({'evaluate': {'split': 'test'}})


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('work'))
  jobs = _jobs()
  _evaluate_folder(os.path.join(workdir, 'evaluate'), jobs)
  result = report.run(CONFIG, workdir)
  out = os.path.join(workdir, 'report')
  with open(os.path.join(out, 'index.html'), encoding='utf-8') as f:
    page = Page(f.read())
  return dict(workdir=workdir, out=out, result=result, page=page, jobs=jobs)


class Page(html.parser.HTMLParser):
  """The tables (rows of (text, bold) cells), links and tags of a page."""

  def __init__(self, text: str):
    super().__init__()
    self.text, self.tables, self.links, self.ids, self.tags = text, [], [], [], []
    self._bold, self._cell = 0, None
    self.feed(text)

  def handle_starttag(self, tag, attrs):
    a = dict(attrs)
    self.tags.append((tag, a))
    self.links += [a[k] for k in ('src', 'href') if a.get(k)]
    if a.get('id'):
      self.ids.append(a['id'])
    if tag == 'table':
      self.tables.append(dict(cls=a.get('class'), rows=[]))
    elif tag == 'tr':
      self.tables[-1]['rows'].append(dict(cls=a.get('class'), cells=[]))
    elif tag in ('td', 'th'):
      self._cell = ['', False]
      self.tables[-1]['rows'][-1]['cells'].append(self._cell)
    elif tag == 'b':
      self._bold += 1
    elif tag == 'br' and self._cell:
      self._cell[0] += ' '

  def handle_endtag(self, tag):
    if tag == 'b':
      self._bold -= 1
    elif tag in ('td', 'th'):
      self._cell = None

  def handle_data(self, data):
    if self._cell:
      self._cell[0] += data
      self._cell[1] |= bool(self._bold and data.strip())

  def table(self, i: int) -> dict:
    """method -> {column: (text, bold)} of table i."""
    rows = self.tables[i]['rows']
    head = [c[0] for c in rows[0]['cells']]
    return {r['cells'][0][0].split()[0]: dict(zip(head[1:], [
        (c[0], c[1]) for c in r['cells'][1:]])) for r in rows[1:]}


def test_files_and_report_json(built):
  out = built['out']
  with open(os.path.join(out, 'report.json'), encoding='utf-8') as f:
    saved = json.load(f)
  assert list(saved['jobs']) == ['continue', 'interpolate', 'outpaint',
                                 'rollout']
  assert saved['jobs']['continue'] == built['jobs']['test.json']
  assert saved['jobs']['rollout'] == built['jobs']['test_rollout.json']
  for name in saved['files']:
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  for name in ('continue_frames.png', 'rollout_frames.png',
               'continue_clip0.gif', 'interpolate_clip2.gif',
               'outpaint_examples.gif'):
    assert name in saved['files']
  assert built['result'] == saved


def test_summary_tables_bold_the_best_never_the_ceiling(built):
  page = built['page']
  summaries = [i for i, t in enumerate(page.tables) if t['cls'] == 'summary']
  assert len(summaries) == 4
  cont = page.table(summaries[0])
  assert list(cont) == ['copy_last', 'reconstruction', 'audio',
                        'mismatched_audio']  # the JSON's order
  assert list(cont['audio']) == ['PSNR dB', 'SSIM', 'MSE', 'mouth MSE']
  assert cont['audio']['PSNR dB'] == ('25.50', True)
  assert cont['audio']['MSE'] == ('0.00300', True)
  assert cont['audio']['mouth MSE'] == ('0.03000', True)
  assert not any(b for _, b in cont['reconstruction'].values())
  assert not any(b for _, b in cont['mismatched_audio'].values())
  ceiling = [r for r in page.tables[summaries[0]]['rows']
             if r['cells'][0][0].startswith('reconstruction')]
  assert ceiling[0]['cls'] == 'ceiling'  # italics, by the page's CSS
  assert re.search(r'tr\.ceiling td\{[^}]*font-style:italic', page.text)
  interp = page.table(summaries[1])
  assert interp['crossfade']['PSNR dB'] == ('28.00', True)
  assert interp['audio']['SSIM'] == ('0.9600', True)
  outp = page.table(summaries[2])
  assert outp['audio']['LPIPS'] == ('0.2000', True)
  roll = page.table(summaries[3])
  assert list(roll['model'])[-1] == 'PSNR drift dB/s'
  assert roll['model']['PSNR drift dB/s'] == ('-1.50', True)
  assert roll['copy_last']['PSNR at 1x horizon'] == ('24.00', True)
  # The last horizon's MSE after the PSNRs, lower is better.
  assert list(roll['model'])[:3] == ['PSNR at 1x horizon',
                                     'PSNR at 2x horizon', 'MSE at 2x horizon']
  assert roll['model']['MSE at 2x horizon'] == ('0.00410', True)
  assert roll['copy_last']['MSE at 2x horizon'] == ('0.00430', False)


def test_per_frame_tables_and_notes(built):
  page = built['page']
  frames = [page.table(i) for i, t in enumerate(page.tables)
            if t['cls'] == 'frames']
  # psnr, ssim, mse, mouth_mse; psnr, ssim, mse; + lpips; psnr, ssim, mse
  assert len(frames) == 4 + 3 + 4 + 3
  assert list(frames[0]['audio']) == ['1', '2']
  assert frames[0]['audio']['1'] == ('25.50', True)
  assert not frames[0]['reconstruction']['1'][1]
  rollout = frames[-3]
  assert list(rollout['model'])[:2] == ['1 0.04 s', '2 0.08 s']
  assert rollout['model']['1 0.04 s'] == ('23.00', False)
  assert rollout['copy_last']['1 0.04 s'] == ('24.00', True)
  assert 'shots' in rollout and len(rollout['model']) == 4
  # The note says how to get LPIPS/FVD where they are missing only.
  assert page.text.count('pip install -e') == 1
  assert '--mode=report' in page.text
  # How tokens became frames, where evaluate says (here the in-betweens).
  assert page.text.count('paste residual, dead zone 0.15') == 1


def test_links_are_local_and_exist(built):
  page = built['page']
  assert page.links
  for link in page.links:
    assert not re.match(r'[a-z]+:', link), link  # no http(s):, file:, data:
    if link.startswith('#'):
      assert link[1:] in page.ids
    else:
      assert os.path.exists(os.path.join(built['out'], link)), link
  assert not re.search(r'https?://', page.text)
  assert not re.search(r'@import|url\(', page.text)
  assert not [t for t, a in page.tags if t in ('script', 'link', 'iframe')]


def test_clip_gifs(built):
  out = built['out']
  im = Image.open(os.path.join(out, 'continue_clip0.gif'))
  assert im.n_frames == FRAMES
  # The truth and four methods, 16 px frames scaled to 96, side by side.
  assert im.width >= 5 * 96
  # The border (below the 18 px labels and the grid's 4 px) is grey on the
  # given first frame, orange on the generated last one.
  near = lambda a, b: np.abs(a.astype(int) - b).max() < 30
  assert near(np.asarray(im.convert('RGB'))[22, 10], report.GIVEN)
  im.seek(FRAMES - 1)
  assert near(np.asarray(im.convert('RGB'))[22, 10], report.GENERATED)


def test_no_evaluate_results(tmp_path):
  (tmp_path / 'evaluate').mkdir()
  (tmp_path / 'evaluate' / 'val.json').write_text('{}')
  with pytest.raises(FileNotFoundError) as e:
    report.run(CONFIG, str(tmp_path))
  # main prints it as one line, without a traceback.
  text = errors.message(e.value)
  assert text.startswith(str(tmp_path / 'evaluate') + ': ')
  assert text.endswith('run --mode=evaluate first') and '\n' not in text


def test_workdir_at_a_url(tmp_path, monkeypatch):
  monkeypatch.setenv('MIRAI_JAX_CACHE', str(tmp_path / 'cache'))
  fs = fsspec.filesystem('memory')
  root = f'/report-{os.getpid()}-{tmp_path.name}'
  _evaluate_folder(str(tmp_path / 'evaluate'),
                   {'test.json': _jobs()['test.json']})
  storage.upload(str(tmp_path / 'evaluate'), f'memory://{root}/evaluate')
  try:
    got = report.run(CONFIG, f'memory://{root}')
    for name in got['files']:
      assert fs.exists(f'{root}/report/{name}'), name
    assert 'continue_clip0.gif' in got['files']
  finally:
    fs.rm(root, recursive=True)


def _screenshot_module():
  spec = importlib.util.spec_from_file_location('report_screenshot',
                                                SCREENSHOT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_chromium_draws_it(built, tmp_path):
  shot = _screenshot_module()
  if not shot.chromium():
    pytest.skip('no Chromium (apt-get install chromium): the page is not '
                'drawn')
  page = os.path.join(built['out'], 'index.html')
  dom = shot.dump_dom(page)
  assert dom.count('<table') == len(built['page'].tables)
  assert 'reconstruction' in dom and 'id="rollout"' in dom
  png = shot.screenshot(page, str(tmp_path / 'shot.png'), 1200, 2000)
  pixels = np.asarray(Image.open(png).convert('RGB'))
  assert pixels.shape == (2000, 1200, 3)
  # Not a blank page: text, tables and plots in many colours.
  assert pixels.std() > 20
  assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100
