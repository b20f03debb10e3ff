"""The one exception type for problems the user fixes, not the code, and
how the entry points report them.

main.py prints a UserError's message (one or two lines naming the field, file
or folder and the fix) and exits with status 1, without a traceback; a bug
keeps its traceback. `--verbosity=1` or MIRAI_JAX_TRACEBACK=1 shows the
traceback of a UserError too.
"""

import errno
import logging as std_logging
import os
import re
import sys
import traceback
import warnings
from typing import Optional

from absl import app
from absl import logging as absl_logging

from absl import flags


class UserError(Exception):
  """A wrong flag, config value, file or folder, with what to do about it."""


# A disk that refuses a write is the user's to fix (free space, another
# folder), never a bug: errno -> what to print and what to do.
DISK_ERRNOS = {
    errno.ENOSPC: ('no space left on device',
                   'free space or give another --workdir'),
    errno.EDQUOT: ('disk quota exceeded',
                   'free space or give another --workdir'),
    errno.EFBIG: ('file too large (a file size limit: ulimit -f, or the '
                  'file system)', 'raise the limit or give another --workdir'),
    errno.EROFS: ('read-only file system', 'give a writable --workdir'),
    errno.EACCES: ('permission denied',
                   'fix its permissions or give another --workdir'),
    errno.EPERM: ('operation not permitted',
                  'fix its permissions or give another --workdir'),
}
# Errors only a write meets (a denied permission may be a read's).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def disk_error(e: BaseException) -> Optional[OSError]:
  """The OSError of a refused write in `e` or what caused it, if any.

  Orbax's writes go through tensorstore, which reports a full disk as a
  ValueError carrying `os_error_code='28'` and the file: that one is turned
  into the OSError it stands for.
  """
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
      return e
    code = re.search(r"os_error_code='?(\d+)", str(e))
    if code and int(code.group(1)) in DISK_ERRNOS:
      path = re.search(r'(?:Failed writing|file): "([^"]+)"', str(e))
      n = int(code.group(1))
      return OSError(n, os.strerror(n), path.group(1) if path else None)
    # Explicit causes only: a bug raised while handling a refused write is
    # still a bug.
    e = e.__cause__
  return None


def message(e: BaseException, folder_flag: str = '--workdir') -> Optional[str]:
  """The one or two lines to print for an error the user fixes, else None
  (a bug: it keeps its traceback). A refused write's fix names
  `folder_flag`, the flag that chooses where the command writes."""
  if isinstance(e, UserError):
    return str(e)
  disk = disk_error(e)
  if disk is not None:
    what, fix = DISK_ERRNOS[disk.errno]
    verb = 'writing' if disk.errno in WRITE_ERRNOS else 'on'
    where = f' {verb} {disk.filename}' if disk.filename else ''
    return f'{what}{where}: {fix.replace("--workdir", folder_flag)}'
  if isinstance(e, FileNotFoundError):
    return str(e)
  return None


def size(n: float) -> str:
  """Bytes for a message: '1.95 GB', '20.3 MB', '4.0 kB'."""
  for unit, scale in (('GB', 1e9), ('MB', 1e6)):
    if n >= scale:
      return f'{n / scale:.{2 if unit == "GB" else 1}f} {unit}'
  return f'{n / 1e3:.1f} kB'


def show_traceback() -> bool:
  """`--verbosity=1` (absl's flag) or MIRAI_JAX_TRACEBACK=1."""
  if os.environ.get('MIRAI_JAX_TRACEBACK', '') not in ('', '0'):
    return True
  return flags.FLAGS.is_parsed() and flags.FLAGS['verbosity'].value >= 1


def exit_if_users(e: BaseException, prefix: str = '',
                  folder_flag: str = '--workdir') -> None:
  """Prints the message of a user's error (with its traceback when asked
  for) and exits with status 1; returns for anything else."""
  text = message(e, folder_flag)
  if text is None:
    return
  if show_traceback():
    traceback.print_exception(e)
  print(f'{prefix}{text}', file=sys.stderr, flush=True)
  sys.exit(1)


def quiet_unraisable(hook):
  """`sys.unraisablehook` without the echoes of an async save that failed:
  its writes still pending when orbax closed their event loop, and their
  clean-up at interpreter exit. The save's own error is reported once."""
  echoes = ('Event loop is closed', 'Python is likely shutting down')

  def quiet(u):
    if not show_traceback() and any(s in str(u.exc_value) for s in echoes):
      return
    hook(u)

  return quiet


class QuietLibraries(std_logging.Filter):
  """Keeps the INFO chatter of jax/orbax/tfds/grain out of the console, and
  the tracebacks of their errors: an error that reaches main is reported
  once, by main (--verbosity=1 shows them)."""

  LIBS = ('/jax/_src/', '/orbax/', '/tensorflow_datasets/', '/grain/')

  def filter(self, record):
    if record.name == 'asyncio' and not show_traceback():
      # Orbax's write tasks that failed with the error main reports, found
      # again when they are garbage-collected.
      return 'never retrieved' not in str(record.msg)
    if not any(lib in record.pathname for lib in self.LIBS):
      return True
    # Python's levels: absl.logging.WARNING is absl's -1, which every
    # record passes.
    if record.levelno < std_logging.WARNING:
      return False
    if not show_traceback():
      record.exc_info, record.exc_text = None, None
    return True


def run_main(body, argv, folder_flag: str = '--workdir') -> None:
  """An entry point's body under quiet_console, its user's errors reported
  in one or two lines (exit 1); usage errors go to absl as before, bugs keep
  their traceback."""
  quiet_console()
  try:
    body(argv)
  except app.UsageError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    exit_if_users(e, folder_flag=folder_flag)
    raise


def parse_flags(argv):
  """absl's flag parsing (app.run's flags_parser), with every mistake in
  --config in one line (exit 1) where ml_collections printed a traceback:
  a config file that is missing or does not compile, a get_config that
  raises, an override naming no field."""
  config = _flag_value(argv, 'config')
  path = config.split(':', 1)[0] if config else ''  # 'file.py:arg'
  if path and not show_traceback():
    if not os.path.isfile(path):
      _fatal(f'--config={config}: no config file {path} (from '
             f'{os.getcwd()}); the shipped ones are in configs/')
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    if show_traceback():
      raise
    inner = e  # ConfigDict raises AttributeError(KeyError(message))
    while isinstance(inner, BaseException) and inner.args:
      inner = inner.args[0]
    name, _, hint = str(inner).partition('\n')
    hint = f' ({hint})' if hint else ''
    _fatal(f'a --config override names no field {name}{hint}; see the '
           'config file for the fields')
  except SyntaxError as e:
    if show_traceback():
      raise
    _fatal(f'--config={config}: {e.filename}, line {e.lineno}: {e.msg}')
  except flags.Error as e:
    _flags_error(e)
  except Exception as e:  # pylint: disable=broad-except
    # The config file's own code raised (at import or in get_config): the
    # line in that file that did is what its author needs.
    if show_traceback() or not path:
      raise
    where = [f for f in traceback.extract_tb(e.__traceback__)
             if os.path.abspath(f.filename) == os.path.abspath(path)]
    line = f', line {where[-1].lineno}' if where else ''
    _fatal(f'--config={config}: {type(e).__name__}: {e} (config file '
           f'{path}{line}; MIRAI_JAX_TRACEBACK=1 shows the traceback)')


def _flags_error(e: BaseException) -> None:
  """absl's one line, where ml_collections puts the whole traceback of a
  get_config that raised into the message: its first line names the flag,
  its last the error."""
  lines = [x.strip() for x in str(e).splitlines() if x.strip()]
  if len(lines) > 2 and not show_traceback():
    lines = [f'{lines[0].rstrip(":")}: {lines[-1]}']
  _fatal('\n'.join(lines) + '\nPass --helpshort or --helpfull to see help '
         'on flags.')


def _flag_value(argv, name: str) -> Optional[str]:
  """The last --name=V or --name V in argv (absl: the last one wins)."""
  value = None
  for i, arg in enumerate(argv[1:], 1):
    if arg == '--':
      break
    if arg.startswith(f'--{name}='):
      value = arg.split('=', 1)[1]
    elif arg == f'--{name}' and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def _fatal(message: str) -> None:
  print(f'FATAL Flags parsing error: {message}', file=sys.stderr)
  sys.exit(1)


class ConsoleFormatter(std_logging.Formatter):
  """'23:17:06 stage data' instead of absl's 'I1127 23:17:06.182191
  140283306728320 main.py:130] stage data': the thread id and source line
  say nothing to a person watching a run (--verbosity=1 brings them back);
  a warning or error says which it is."""

  def __init__(self):
    super().__init__('%(asctime)s %(message)s', '%H:%M:%S')

  def format(self, record):
    text = super().format(record)
    if record.levelno >= std_logging.WARNING:
      time_, rest = text.split(' ', 1)
      return f'{time_} {record.levelname.lower()}: {rest}'
    return text


def quiet_console() -> None:
  """What an entry point installs first: library chatter and the echoes of
  a failed save off the console, absl's prefixes shortened."""
  handler = absl_logging.get_absl_handler()
  handler.addFilter(QuietLibraries())
  sys.unraisablehook = quiet_unraisable(sys.unraisablehook)
  if not show_traceback():
    handler.python_handler.setFormatter(ConsoleFormatter())
    # The writes a failed async save left pending are collected at exit,
    # after the one line that reported the save's error.
    warnings.filterwarnings('ignore', category=RuntimeWarning,
                            message=r'coroutine .* was never awaited')
