r"""Device memory each training step needs, planned by XLA: no GPU needed.

  python bench/memory.py --config=configs/kny.py [--budget_gb=78]
      [--stages=tokenizer,transformer] [--config.transformer.remat=full ...]

Compiles each stage's real update step (bench/stages.py) for ONE device of
the current platform at the config's batch size, without allocating it, and
prints one JSON line per stage: the peak bytes XLA's buffer assignment plans
(`compiled.memory_analysis()`: arguments + outputs + temporaries - donated
buffers), whether that fits `--budget_gb`, and the largest batch that fits
(two compiles give bytes per example; a third checks the answer). On a CPU
the plan is the CPU compiler's: fusion differs from a GPU's, so read it as
an estimate there and measure on the GPU itself (README "Benchmarks").
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import stages  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax import mesh as mesh_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'kny.py'))
_BUDGET = flags.DEFINE_float('budget_gb', 78.0, 'Device memory to fit (GiB).')
_STAGES = flags.DEFINE_list('stages', ['tokenizer', 'transformer'],
                            'Training stages to size.')
_SEARCH = flags.DEFINE_bool('search', True, 'Also find the largest batch.')

GIB = 2 ** 30


def planned_bytes(stage: str, config, batch: int) -> dict:
  """XLA's memory plan of one training step of `stage` at `batch` clips."""
  mesh = mesh_lib.make_mesh(1, 1)
  step = stages.STAGES[stage](config, mesh, batch)
  compiled = step.update.lower(step.abstract_state,
                               step.abstract_batch).compile()
  m = compiled.memory_analysis()
  total = (m.argument_size_in_bytes + m.output_size_in_bytes
           + m.temp_size_in_bytes - m.alias_size_in_bytes)
  peak = max(getattr(m, 'peak_memory_in_bytes', 0) or 0, total)
  return dict(peak=peak, arguments=m.argument_size_in_bytes,
              temporaries=m.temp_size_in_bytes, info=step.info)


def largest_batch(stage, config, budget, b0, plan0, multiple) -> int:
  """Bytes are affine in the batch: fit two plans, then check the answer."""
  b1 = max(multiple, b0 // 2 // multiple * multiple)
  if b1 == b0:
    b1 = b0 * 2
  plan1 = planned_bytes(stage, config, b1)['peak']
  per = max((plan0 - plan1) / (b0 - b1), 1.0)
  fixed = plan0 - per * b0
  best = int((budget - fixed) // per) // multiple * multiple
  while best >= multiple and planned_bytes(stage, config, best)['peak'] > budget:
    best -= multiple
  return max(best, 0)


def main(_):
  config = _CONFIG.value
  budget = _BUDGET.value * GIB
  for stage in _STAGES.value:
    batch = getattr(config, stage).batch_size
    plan = planned_bytes(stage, config, batch)
    result = dict(benchmark='memory', stage=stage,
                  platform=__import__('jax').default_backend(),
                  batch_size=batch, **plan['info'],
                  peak_gb=round(plan['peak'] / GIB, 2),
                  parameters_and_state_gb=round(plan['arguments'] / GIB, 2),
                  temporaries_gb=round(plan['temporaries'] / GIB, 2),
                  budget_gb=_BUDGET.value, fits=plan['peak'] <= budget)
    if _SEARCH.value:
      result['largest_batch'] = largest_batch(stage, config, budget, batch,
                                              plan['peak'], 8 if batch >= 8 else 1)
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
  app.run(main)
