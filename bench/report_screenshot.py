r"""A screenshot of a workdir's report (`--mode=report`), for the README.

  python bench/report_screenshot.py WORKDIR [--out=report.png] [--width=1200]
      [--height=0] [--build]

Renders <WORKDIR>/report/index.html with headless Chromium (Debian:
`apt-get install chromium`; CHROMIUM=path picks another binary) into a PNG
(default <WORKDIR>/report/screenshot.png). --height=0 takes the whole page;
--build first makes the report from <WORKDIR>/evaluate/ (split 'test').
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image


def chromium() -> str:
  """The headless browser's path, or '' when none is installed."""
  for name in (os.environ.get('CHROMIUM', ''), 'chromium', 'chromium-browser',
               'google-chrome', '/usr/bin/chromium'):
    found = name and shutil.which(name)
    if found:
      return found
  return ''


def _run(browser: str, args: list, timeout: float) -> str:
  # A fresh profile each time: no first-run state, no lock of another
  # Chromium; the crash reporter off, since it wants a writable home.
  with tempfile.TemporaryDirectory(prefix='mirai_jax-chromium-') as profile:
    cmd = [browser, '--headless', '--no-sandbox', '--disable-gpu',
           '--hide-scrollbars', '--disable-dev-shm-usage',
           '--disable-crash-reporter', '--no-first-run',
           f'--user-data-dir={profile}'] + args
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          check=False)
  if done.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed ({done.returncode}): '
                       f'{done.stderr[-2000:]}')
  return done.stdout


def dump_dom(page: str, browser: str = '', timeout: float = 60) -> str:
  """The page's DOM after Chromium loaded it from disk."""
  return _run(browser or chromium(),
              ['--dump-dom', 'file://' + os.path.abspath(page)], timeout)


def _trim(png: str) -> None:
  """Cuts the rows below the page's end (all the colour of the last row):
  Chromium's screenshot is of the window, not of the page."""
  im = Image.open(png).convert('RGB')
  pixels = np.asarray(im)
  same = (pixels == pixels[-1]).all(axis=(1, 2))
  last = len(same) - np.argmin(same[::-1]) if not same.all() else 1
  im.crop((0, 0, im.width, min(im.height, last + 24))).save(png)


def screenshot(page: str, png: str, width: int = 1200, height: int = 0,
               browser: str = '', timeout: float = 60) -> str:
  """Writes the PNG of `page` as Chromium draws it; returns its path.
  height=0: the whole page (a tall window, cut at the page's end)."""
  trim = not height
  height = height or 16000  # Chromium draws nothing in a taller window
  os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
  _run(browser or chromium(),
       [f'--screenshot={os.path.abspath(png)}',
        f'--window-size={width},{height}',
        'file://' + os.path.abspath(page)], timeout)
  if not os.path.exists(png):
    raise RuntimeError(f'Chromium wrote no {png} (a window of {width}x'
                       f'{height} may be too large for it)')
  if trim:
    _trim(png)
  return png


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('workdir')
  parser.add_argument('--out', default='')
  parser.add_argument('--width', type=int, default=1200)
  parser.add_argument('--height', type=int, default=0)
  parser.add_argument('--build', action='store_true')
  args = parser.parse_args()
  if args.build:
    import ml_collections  # pylint: disable=g-import-not-at-top
    from mirai_jax import report  # pylint: disable=g-import-not-at-top
    report.run(ml_collections.ConfigDict({'evaluate': {'split': 'test'}}),
               args.workdir)
  page = os.path.join(args.workdir, 'report', 'index.html')
  if not os.path.exists(page):
    sys.exit(f'{page} not found: make it with --mode=report (or --build)')
  if not chromium():
    sys.exit('no Chromium found: apt-get install chromium (or CHROMIUM=path)')
  png = args.out or os.path.join(args.workdir, 'report', 'screenshot.png')
  screenshot(page, png, args.width, args.height)
  print(f'report_screenshot: wrote {png}')


if __name__ == '__main__':
  main()
