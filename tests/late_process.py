"""`python -m mirai_jax.main` whose process 1 is late to its first step.

Usage: python tests/late_process.py SECONDS <mirai_jax.main flags>

tests/test_distributed.py starts a pair of these to stand for a host that
compiles or reads slower than the others: its first training batch comes
SECONDS late, longer than the 30 s after which Gloo gives up on the first
run of a program with collectives.
"""

import sys
import time

from absl import app
from absl import flags
import jax

from mirai_jax import errors
from mirai_jax import main
from mirai_jax.data import pipeline
from mirai_jax.train import loop


def _late_first_step(seconds: float) -> None:
  to_global = pipeline.to_global
  waited = []

  def late(*args, **kwargs):
    # Only the train loop's batches: the stages lay out other batches
    # before it (summaries), and processes meet again after those.
    in_loop = sys._getframe(1).f_code is loop.run.__code__  # pylint: disable=protected-access
    if in_loop and jax.process_index() == 1 and not waited:
      waited.append(seconds)
      time.sleep(seconds)
    return to_global(*args, **kwargs)

  pipeline.to_global = late


if __name__ == '__main__':
  _late_first_step(float(sys.argv.pop(1)))
  flags.mark_flags_as_required(['config'])
  app.run(main.main, flags_parser=errors.parse_flags)
