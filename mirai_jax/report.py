"""`--mode=report`: one offline HTML page of every job, method and horizon.

  python -m mirai_jax.main --config=configs/demo.py --workdir=DIR --mode=report

Reads only what `--mode=evaluate` left in <workdir>/evaluate/ (the JSON of
each job, <split>.json, <split>_<task>.json and <split>_rollout.json, and
the example clips beside them) and writes <workdir>/report/:

  index.html         opens from disk (file://): inline CSS, no script, nothing
                     fetched. Per job: methods x metrics (the best of each
                     column in bold; the tokenizer's reconstruction, the
                     ceiling, in italics and never counted), each metric per
                     predicted frame (seconds for a rollout) as a table and a
                     plot, and the same test clips as every method predicted
                     them beside the truth.
  report.json        every number: the evaluate JSONs under their job names,
                     and the files written
  <job>_frames.png   the per-frame curves of every method
  <job>_clip<i>.gif  clip i: the truth, then every method (grey border: a
                     given frame or column, orange: generated), from
                     <split>[_<task>]_examples.npz; a workdir evaluated before
                     those existed gets evaluate's <job>_examples.gif instead
"""

from __future__ import annotations

import datetime
import fractions
import html
import json
import math
import os
import re
import shutil
import sys
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mirai_jax import render
from mirai_jax import storage

JOBS = ('continue', 'interpolate', 'outpaint', 'rollout')  # page order
CEILINGS = ('reconstruction',)  # shown, never the best
MODELS = ('audio', 'model')  # the model's row in a task's / a rollout's table
METRICS = ('psnr', 'ssim', 'mse', 'mouth_mse', 'lpips', 'fvd')  # column order
LABELS = {'psnr': 'PSNR dB', 'ssim': 'SSIM', 'mse': 'MSE',
          'mouth_mse': 'mouth MSE', 'lpips': 'LPIPS', 'fvd': 'FVD',
          'psnr_drift_db_per_s': 'PSNR drift dB/s'}
GALLERY_CLIPS = 4
GIF_FPS = 4  # slow enough to follow a clip of 4-8 frames
GIVEN, GENERATED = (120, 126, 132), (232, 113, 10)  # the clip borders

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1d2125;margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:21px;margin:38px 0 6px;
 padding-top:14px;border-top:2px solid #e3e6ea}h3{font-size:16px;margin:22px 0 6px}
.meta{color:#555;margin:0 0 10px}.meta b{color:#1d2125}
nav a{margin-right:14px}code{background:#f0f2f4;padding:1px 5px;border-radius:3px}
table{border-collapse:collapse;margin:6px 0 4px;font-size:14px}
.scroll{overflow-x:auto;max-width:100%}
table.frames{font-size:13px}.frames th,.frames td{padding:3px 7px}
th,td{padding:4px 10px;border-bottom:1px solid #e3e6ea;white-space:nowrap}
th{background:#f0f2f4;text-align:right;font-weight:600}
th:first-child,td:first-child{text-align:left}
td{text-align:right;font-variant-numeric:tabular-nums}
tr.ceiling td{font-style:italic;color:#667}tr.model td:first-child{font-weight:600}
td b{color:#0b57d0}.tag{font-size:12px;color:#667;font-weight:400}
.legend{font-size:13px;color:#555;margin:2px 0 10px}
.note{background:#fff8e1;border-left:4px solid #f2b600;padding:6px 12px;
 margin:10px 0;font-size:14px}
details{margin:4px 0}summary{cursor:pointer;font-weight:600;margin:6px 0}
img.plot{max-width:100%;border:1px solid #e3e6ea}
.gallery{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0}figcaption{font-size:13px;color:#555}
img.clip{image-rendering:pixelated;max-width:100%;border:1px solid #e3e6ea}
.how{margin-top:40px;font-size:13px;color:#555}.how code{white-space:nowrap}
"""


def run(config, workdir: str) -> dict:
  split = config.evaluate.get('split', 'test')
  # workdir.stage_dir's layout; that module would import TensorFlow.
  source = os.path.join(workdir, 'evaluate')
  out = os.path.join(workdir, 'report')
  storage.writable(out, '--workdir')
  jobs = read_jobs(source, split)
  colours = _colours(jobs)
  files, sections = [], []
  # Pictures first, the page that links them last: no reader sees a page
  # with missing pictures.
  with storage.output_dir(out) as local:
    for job, (result, folder, name) in jobs.items():
      sections.append(_section(job, result, folder, name, local, colours,
                               files))
  files += ['report.json', 'index.html']
  report = dict(workdir=workdir, split=split, created=_now(),
                jobs={job: r for job, (r, _, _) in jobs.items()}, files=files)
  storage.write_text(os.path.join(out, 'report.json'),
                     json.dumps(report, indent=1))
  index = os.path.join(out, 'index.html')
  storage.write_text(index, _page(report, sections))
  print(f'report: wrote {index} (open it in a browser)', flush=True)
  print(f'report: {len(files) - 2} plots and clips, and report.json, in {out}',
        flush=True)
  return report


# ---------------------------------------------------------------- Inputs


def read_jobs(source: str, split: str) -> dict:
  """job -> (evaluate's JSON, the local folder holding it, its file name),
  in page order. Raises FileNotFoundError without one."""
  local = storage.local_copy(source) if storage.exists(source) else None
  names = sorted(os.listdir(local)) if local and os.path.isdir(local) else []
  jobs = {}
  for name in names:
    m = re.fullmatch(re.escape(split) + r'(?:_(\w+))?\.json', name)
    if not m:
      continue
    result = json.loads(storage.read_text(os.path.join(local, name)))
    # Another split's file can match (test_hard.json for split 'test').
    if result.get('split') != split or 'methods' not in result:
      continue
    jobs[result.get('task') or m.group(1) or 'continue'] = (result, local,
                                                            name)
  if not jobs:
    raise FileNotFoundError(
        f'{source}: no evaluate results for split {split!r} ({split}.json, '
        f'{split}_<task>.json): run --mode=evaluate first')
  rank = lambda j: (JOBS.index(j) if j in JOBS else len(JOBS) - 1, j)
  return {j: jobs[j] for j in sorted(jobs, key=rank)}


def _colours(jobs: dict) -> dict:
  """One colour per method on every plot of the page."""
  names = []
  for result, _, _ in jobs.values():
    names += [k for k in result['methods'] if k not in names]
  # The model in one colour in every job (a rollout calls it 'model').
  same = {k: MODELS[0] for k in MODELS[1:] if MODELS[0] in names}
  plt = render.pyplot()
  cycle = plt.get_cmap('tab10').colors + plt.get_cmap('Dark2').colors
  rest = [k for k in names if k not in CEILINGS and k not in same]
  colours = {k: cycle[i % len(cycle)] for i, k in enumerate(rest)}
  colours.update({k: colours[v] for k, v in same.items()})
  colours.update({k: (0.1, 0.1, 0.1) for k in CEILINGS})
  return colours


def direction(metric: str) -> int:
  """+1 where higher is better, -1 where lower is, 0 unknown (never bold)."""
  metric = metric[:-len('_per_frame')] if metric.endswith('_per_frame') else metric
  if metric.startswith(('psnr', 'ssim')):  # psnr_at_2x, the drift too
    return 1
  if metric.endswith(('mse', 'lpips', 'fvd')) or metric.startswith('mse_at'):
    return -1
  return 0


def columns(methods: dict) -> list[str]:
  """The scalar metrics of a table: METRICS first, then the others as the
  JSON orders them (a rollout's psnr_at_<k>x and drift)."""
  keys = []
  for v in methods.values():
    keys += [k for k, x in v.items() if k not in keys and _number(x)]
  rest = [k for k in keys if k not in METRICS]
  # A rollout's PSNR at 1x, 2x, ... of the horizon, its MSE at the last,
  # then its drift.
  rest.sort(key=lambda k: (not k.startswith('psnr_at_'),
                           not k.startswith('mse_at_')))
  return [m for m in METRICS if m in keys] + rest


def per_frame(methods: dict) -> list[str]:
  """The metrics scored per predicted frame, in column order."""
  keys = []
  for v in methods.values():
    keys += [k[:-len('_per_frame')] for k in v
             if k.endswith('_per_frame') and k[:-len('_per_frame')] not in keys]
  return [m for m in METRICS if m in keys] + [k for k in keys
                                              if k not in METRICS]


def best(values: dict, metric: str) -> Optional[float]:
  """The best of `values` (method -> number), ceilings left out."""
  sign = direction(metric)
  got = [v for k, v in values.items() if k not in CEILINGS and _number(v)
         and math.isfinite(v)]
  if not sign or not got:
    return None
  return max(got) if sign > 0 else min(got)


def _number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool)


# ---------------------------------------------------------------- A job


def _section(job: str, result: dict, folder: str, name: str, out: str,
             colours: dict, files: list) -> str:
  """The HTML of one job; its pictures written into `out`."""
  methods = result['methods']
  parts = [f'<h2 id="{_e(job)}">{_e(job)}</h2>',
           f'<p class="meta">{_describe(job, result)}</p>',
           '<h3>Mean over clips and predicted frames</h3>',
           _summary_table(methods, columns(methods)),
           _legend(job, methods)]
  parts += [f'<p class="note">{_e(result[k])}</p>' for k in _notes(result)]
  metrics = per_frame(methods)
  if metrics:
    x, xlabel = _horizon(result, max(len(v.get(f'{m}_per_frame') or [])
                                     for v in methods.values()
                                     for m in metrics))
    png = f'{job}_frames.png'
    _plot(os.path.join(out, png), job, methods, metrics, x, xlabel, result,
          colours)
    files.append(png)
    parts += [f'<h3>Per {"second" if job == "rollout" else "predicted frame"}'
              '</h3>',
              f'<img class="plot" src="{_e(png)}" alt="{_e(job)}: each '
              'metric per predicted frame">']
    for i, m in enumerate(metrics):
      parts.append(f'<details{" open" if i == 0 else ""}><summary>'
                   f'{_e(_label(m))} per frame</summary><div class="scroll">'
                   f'{_frame_table(methods, m, x, xlabel, result)}</div>'
                   '</details>')
  gallery = _gallery(job, result, folder, name, out, files)
  if gallery:
    parts += ['<h3>The same test clips, every method</h3>', gallery]
  return f'<section>{"".join(parts)}</section>'


def _describe(job: str, r: dict) -> str:
  """One line: what was given, what was predicted, on how many clips."""
  if job == 'rollout':
    what = (f"<b>{r['shots']}</b> test shots continued for "
            f"<b>{r['windows']}</b> windows of {r['training_horizon_frames']} "
            f"frames (the training horizon), {r['horizon_frames']} frames in "
            f"all at {_e(str(r.get('fps', '?')))} fps")
  elif 'given_columns' in r:
    a, b = r['given_columns']
    what = (f"<b>{r['clips']}</b> clips, {r['predicted_frames']} frames "
            f"widened: columns {a}&ndash;{b - 1} of {r.get('width', '?')} "
            'given, the sides scored')
  else:
    what = (f"<b>{r['clips']}</b> clips, {r['context_frames']} context "
            f"&rarr; {r['predicted_frames']} predicted frames")
    if 'given_frames' in r:
      what += f" between keyframes (given frames {r['given_frames']})"
  steps = [f'{k} step <b>{r[f"{k}_step"]}</b>' for k in
           ('tokenizer', 'transformer') if f'{k}_step' in r]
  sample = r.get('sample')
  if isinstance(sample, dict):
    steps.append('sampling ' + ', '.join(f'{_e(k)} {_e(str(v))}'
                                         for k, v in sample.items()))
  if r.get('paste'):  # how tokens became the frames scored
    steps.append(f"paste {_e(str(r['paste']))}" + (
        f", dead zone {r['paste_threshold']:g}"
        if r['paste'] == 'residual' and r.get('paste_threshold') else ''))
  return '; '.join([what] + steps)


def _legend(job: str, methods: dict) -> str:
  text = '<b>Bold</b>: the best of each column.'
  if any(k in CEILINGS for k in methods):
    text += (' <i>Italics</i>: the tokenizer\'s reconstruction of the true '
             'frames, the ceiling any token predictor can reach (never '
             'counted as the best).')
  model = [k for k in methods if k in MODELS]
  if model:
    text += f' <b>{_e(model[0])}</b> is the model.'
  return f'<p class="legend">{text}</p>'


def _notes(result: dict) -> list[str]:
  """metrics_note only while LPIPS/FVD are missing; any other *_note."""
  missing = not any(k in v for v in result['methods'].values()
                    for k in ('lpips', 'fvd'))
  return [k for k in result if k.endswith('_note') and isinstance(
      result[k], str) and (k != 'metrics_note' or missing)]


def _horizon(result: dict, n: int) -> tuple[list, str]:
  """x of each scored frame: 1..n, or seconds after the context."""
  try:
    fps = float(fractions.Fraction(str(result['fps'])))
  except (KeyError, ValueError, ZeroDivisionError):
    return list(range(1, n + 1)), 'predicted frame'
  return [(i + 1) / fps for i in range(n)], 'seconds after the context'


# ---------------------------------------------------------------- Tables


def _summary_table(methods: dict, keys: list[str]) -> str:
  head = ''.join(f'<th>{_e(_label(k))}</th>' for k in keys)
  bests = {k: best({m: v.get(k) for m, v in methods.items()}, k)
           for k in keys}
  rows = [_row(m, [(v.get(k), k, bests[k]) for k in keys])
          for m, v in methods.items()]
  return (f'<table class="summary"><tr><th>method</th>{head}</tr>'
          f'{"".join(rows)}</table>')


def _frame_table(methods: dict, metric: str, x: list, xlabel: str,
                 result: dict) -> str:
  key = f'{metric}_per_frame'
  n = len(x)
  if xlabel.startswith('seconds'):
    head = ''.join(f'<th>{i + 1}<br><span class="tag">{t:.2f} s</span></th>'
                   for i, t in enumerate(x))
  else:
    head = ''.join(f'<th>{i + 1}</th>' for i in range(n))
  per = {m: (v.get(key) or [None] * n) for m, v in methods.items()}
  bests = [best({m: p[i] for m, p in per.items() if i < len(p)}, metric)
           for i in range(n)]
  rows = [_row(m, [(p[i] if i < len(p) else None, metric, bests[i])
                   for i in range(n)]) for m, p in per.items()]
  if 'shots_per_frame' in result:
    rows.append('<tr class="ceiling"><td>shots scored</td>' + ''.join(
        f'<td>{c}</td>' for c in result['shots_per_frame'][:n]) + '</tr>')
  return (f'<table class="frames"><tr><th>method \\ frame</th>{head}</tr>'
          f'{"".join(rows)}</table>')


def _row(method: str, cells: list[tuple]) -> str:
  """<tr> of (value, metric, best of its column) cells; the best in bold
  unless this row is a ceiling."""
  ceiling = method in CEILINGS
  kind = ' class="ceiling"' if ceiling else (
      ' class="model"' if method in MODELS else '')
  name = _e(method) + (' <span class="tag">(ceiling)</span>' if ceiling
                       else ' <span class="tag">(model)</span>'
                       if method in MODELS else '')
  tds = []
  for value, metric, top in cells:
    text = _fmt(metric, value)
    if not ceiling and top is not None and value == top:
      text = f'<b>{text}</b>'
    tds.append(f'<td>{text}</td>')
  return f'<tr{kind}><td>{name}</td>{"".join(tds)}</tr>'


def _fmt(metric: str, v) -> str:
  if not _number(v):
    return '&ndash;'
  if metric.endswith('mse') or metric.startswith('mse_at'):
    return f'{v:.5f}'
  if metric.startswith('ssim') or metric == 'lpips':
    return f'{v:.4f}'
  if metric == 'fvd':
    return f'{v:.1f}'
  return f'{v:.2f}'


def _label(metric: str) -> str:
  m = re.fullmatch(r'(psnr|mse)_at_(\d+)x', metric)
  if m:
    return f'{m.group(1).upper()} at {m.group(2)}x horizon'
  return LABELS.get(metric, metric)


# ---------------------------------------------------------------- Pictures


def _plot(path: str, job: str, methods: dict, metrics: list[str], x: list,
          xlabel: str, result: dict, colours: dict) -> None:
  """Each metric against the predicted frame, one line per method."""
  plt = render.pyplot()
  fig, axes = plt.subplots(1, len(metrics), figsize=(3.9 * len(metrics), 3.3),
                           squeeze=False)
  for ax, m in zip(axes[0], metrics):
    for k, v in methods.items():
      ys = v.get(f'{m}_per_frame')
      if not ys:
        continue
      ax.plot(x[:len(ys)], ys, label=k, color=colours[k],
              ls='--' if k in CEILINGS else '-',
              lw=2.4 if k in MODELS else 1.4,
              marker='o' if len(ys) <= 12 else None, ms=4)
    if job == 'rollout':  # where each new window starts from generated steps
      window = result['training_horizon_frames'] * x[0]  # in seconds
      for w in range(1, result.get('windows', 1)):
        ax.axvline(w * window, color='0.8', lw=0.8, zorder=0)
    else:
      ax.set_xticks(x)
    ax.set_title(_label(m) + (' (higher is better)' if direction(m) > 0 else
                              ' (lower is better)' if direction(m) < 0 else ''),
                 fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  per_row = 8 if len(labels) <= 8 else math.ceil(len(labels) / 2)
  fig.legend(handles, labels, loc='lower center', ncol=per_row, fontsize=9,
             frameon=False)
  fig.tight_layout(rect=(0, 0.07 * math.ceil(len(labels) / per_row) + 0.03,
                         1, 1))
  fig.savefig(path, format='png', dpi=100)
  plt.close(fig)


def _gallery(job: str, result: dict, folder: str, name: str, out: str,
             files: list) -> str:
  """The figures of the job's example clips (GIFs written into `out`)."""
  stem = name[:-len('.json')]
  npz = os.path.join(folder, f'{stem}_examples.npz')
  if os.path.exists(npz):
    with np.load(npz, allow_pickle=False) as f:
      clips = {k: f[k] for k in f.files}
    return _clip_gifs(job, result, clips, out, files)
  gif = os.path.join(folder, f'{stem}_examples.gif')
  if not os.path.exists(gif):
    return ''
  copy = f'{job}_examples.gif'
  shutil.copyfile(gif, os.path.join(out, copy))
  files.append(copy)
  return (f'<figure><img class="clip" src="{_e(copy)}" alt="{_e(job)} '
          'examples"><figcaption>evaluate\'s example GIF (this workdir has no '
          f'{_e(stem)}_examples.npz): a clip per row; the truth, the model, '
          'the model with mismatched audio, the baseline of the job, the '
          'reconstruction.</figcaption></figure>')


def _clip_gifs(job: str, result: dict, clips: dict, out: str,
               files: list) -> str:
  real = clips['real']
  given = clips.get('given', np.zeros(real.shape[1], bool)).astype(bool)
  names = [k for k in result['methods'] if k in clips]
  names += [k for k in clips if k not in names and k not in ('real', 'given')]
  figures = []
  for i in range(min(len(real), GALLERY_CLIPS)):
    gif = f'{job}_clip{i}.gif'
    frames = clip_grid([real[i]] + [clips[k][i] for k in names],
                       ['truth'] + names, given, result.get('given_columns'))
    render.write_gif(os.path.join(out, gif), frames, fps=GIF_FPS)
    files.append(gif)
    figures.append(f'<figure><img class="clip" src="{_e(gif)}" alt="{_e(job)}'
                   f' clip {i + 1}: the truth, then {_e(", ".join(names))}">'
                   f'<figcaption>clip {i + 1}</figcaption></figure>')
  marks = ('grey border: given to every method; orange: generated'
           + ('; the grey top and bottom edges: the given centre columns'
              if result.get('given_columns') else ''))
  return (f'<p class="legend">{_e(marks)}. {GIF_FPS} frames a second, '
          'looping.</p><div class="gallery">' + ''.join(figures) + '</div>')


def clip_grid(videos: list[np.ndarray], labels: list[str], given: np.ndarray,
              given_columns: Optional[list] = None) -> np.ndarray:
  """Clips (T, H, W, 3) side by side with their labels on top, each framed
  grey on a given frame and orange on a generated one, the frame number
  below: (T, H', W', 3)."""
  clips = render.to_uint8(np.stack(videos))
  _, t, h, w, _ = clips.shape
  scale = max(1, min(8, math.ceil(96 / w)))  # room for the labels
  clips = clips.repeat(scale, axis=2).repeat(scale, axis=3)
  b = 2  # border
  framed = np.empty(clips.shape[:2] + (h * scale + 2 * b, w * scale + 2 * b, 3),
                    np.uint8)
  framed[:] = np.where(given[:t, None, None, None], GIVEN, GENERATED)[None]
  if given_columns:  # a widening's given centre, along the top and bottom
    a, c = (b + scale * int(v) for v in given_columns)
    framed[:, :, :b, a:c] = GIVEN
    framed[:, :, -b:, a:c] = GIVEN
  framed[:, :, b:-b, b:-b] = clips
  pad = 4
  body = render.grid(framed, cols=len(videos), pad=pad)
  font = _font()
  head = _strip(body.shape[2], 18)
  draw = ImageDraw.Draw(head)
  cell = framed.shape[3]
  for q, label in enumerate(labels):
    draw.text((pad + q * (cell + pad) + 1, 3), _fit(label, font, cell, draw),
              fill=(30, 33, 37), font=font)
  head = np.asarray(head)
  out = []
  for k in range(t):
    foot = _strip(body.shape[2], 16)
    ImageDraw.Draw(foot).text(
        (pad + 1, 1), f'frame {k + 1}/{t} ' + ('given' if given[k] else
                                               'generated'),
        fill=GIVEN if given[k] else GENERATED, font=font)
    out.append(np.concatenate([head, body[k], np.asarray(foot)]))
  return np.stack(out)


def _strip(width: int, height: int) -> Image.Image:
  return Image.new('RGB', (width, height), (255, 255, 255))


def _font():
  try:
    return ImageFont.load_default(size=12)
  except TypeError:  # pillow < 10.1: the small bitmap font
    return ImageFont.load_default()


def _fit(text: str, font, width: int, draw: ImageDraw.ImageDraw) -> str:
  """`text` cut (with ...) to fit `width` pixels."""
  if draw.textlength(text, font=font) <= width - 2:
    return text
  while text and draw.textlength(text + '...', font=font) > width - 2:
    text = text[:-1]
  return text + '...'


# ---------------------------------------------------------------- The page


def _page(report: dict, sections: list[str]) -> str:
  jobs = report['jobs']
  steps = []
  for k in ('tokenizer', 'transformer'):
    got = sorted({str(r[f'{k}_step']) for r in jobs.values()
                  if f'{k}_step' in r})
    if got:
      steps.append(f'{k} step <b>{", ".join(got)}</b>')
  nav = ''.join(f'<a href="#{_e(j)}">{_e(j)}</a>' for j in jobs)
  workdir = report['workdir']
  head = (f'<h1>mirai_jax: every method, job and horizon</h1>'
          f'<p class="meta">workdir <code>{_e(workdir)}</code>; split '
          f'<b>{_e(report["split"])}</b>; {"; ".join(steps)}; made '
          f'{_e(report["created"])}</p><nav>jobs: {nav}</nav>')
  how = (f'<p class="how">How this was made: <code>{_e(command(workdir, report["split"]))}'
         f'</code>, from the files of <code>{_e(os.path.join(workdir, "evaluate"))}'
         '/</code> (<code>--mode=evaluate</code>); every number is in '
         '<a href="report.json">report.json</a>.</p>')
  return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          '<meta name="viewport" content="width=device-width, initial-scale=1">'
          f'<title>mirai_jax report: {_e(workdir)}</title>'
          f'<style>{CSS}</style></head><body><main>{head}{"".join(sections)}'
          f'{how}</main></body></html>\n')


def command(workdir: str, split: str) -> str:
  """The command line that makes this report (the config file as given to
  main, when it was)."""
  config = next((a for a in sys.argv[1:] if a.startswith('--config=')),
                '--config=...')
  extra = f' --config.evaluate.split={split}' if split != 'test' else ''
  return (f'python -m mirai_jax.main {config} --workdir={workdir} '
          f'--mode=report{extra}')


def _now() -> str:
  return datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')


def _e(text) -> str:
  return html.escape(str(text), quote=True)
