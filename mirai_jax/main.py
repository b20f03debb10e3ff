r"""Entry point: python -m mirai_jax.main --config=configs/demo.py --workdir=DIR.

--workdir may be left out when the config names one (config.workdir).
Runs the config's stages in order (or those named by --mode); every stage
reads what the earlier ones left in the workdir, so a stage can be rerun on
its own. Any config field can be overridden: --config.preview.num_clips=4.
--workdir and the data paths may be gs:// URLs (storage.py). On several
hosts every process runs the same command (see distributed.py and launch/);
evaluate and predict run in one process, so a multi-process run leaves them
out and prints the command that runs them. --mode=pix2pix and
--mode=multiscale train the pixel baselines (train/baseline.py) that evaluate
then scores beside the model; --mode=report alone trains whatever is missing,
evaluates every method and writes <workdir>/report/index.html (report.py).
Every config field and output
folder is checked before any compute (checks.py). Exit status: 0 done, 1 an
input is missing, a config value or folder is wrong or the disk is full (one
or two lines naming it and the fix; --verbosity=1 or MIRAI_JAX_TRACEBACK=1
adds the traceback), 143 preempted (SIGTERM) after saving: run the same
command to resume.
"""

import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from mirai_jax import checks
from mirai_jax import dataset
from mirai_jax import distributed
from mirai_jax import errors
from mirai_jax import evaluate
from mirai_jax import mesh as mesh_lib
from mirai_jax import predict
from mirai_jax import preview
from mirai_jax import report
from mirai_jax import storage
from mirai_jax import tokenize
from mirai_jax import workdir as workdir_lib
from mirai_jax.train import baseline
from mirai_jax.train import loop
from mirai_jax.train import tokenizer
from mirai_jax.train import transformer

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where everything is written.')
_MODE = flags.DEFINE_string('mode', None, 'Comma-separated stages to run '
                            '(default: the config\'s `stages`).')
_DISTRIBUTED = flags.DEFINE_enum(
    'distributed', 'auto', distributed.MODES,
    'Join a multi-process run: auto = when the coordinator flags/variables '
    'are set or SLURM/Open MPI started several tasks; on = always (TPU VMs).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', 'host:port of process 0 (multi-process runs).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Processes in the run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process, 0-based.')

# Stages that run in one process; a multi-process run leaves them out.
ONE_PROCESS = ('evaluate', 'predict', 'report')
STAGES = {
    'data': dataset.run,
    'preview': preview.run,
    'tokenizer': tokenizer.train_and_evaluate,
    'tokenize': tokenize.run,
    'transformer': transformer.train_and_evaluate,
    'evaluate': evaluate.run,
    'predict': predict.run,
    # Pixel baselines (train/baseline.py), not in any config's stages:
    # evaluate scores those trained in the workdir beside the model.
    'pix2pix': lambda c, w: baseline.train_and_evaluate('pix2pix', c, w),
    'multiscale': lambda c, w: baseline.train_and_evaluate('multiscale', c, w),
    # Alone (--mode=report): whatever is missing, then evaluate and report.
    'report': report.run,
}


def main(argv):
  errors.run_main(_main, argv)


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  stages = [s.strip() for s in (_MODE.value or config.stages).split(',') if s]
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise app.UsageError(f'unknown stage(s) {unknown}; known: {list(STAGES)}')
  workdir = _WORKDIR.value or config.get('workdir')
  if not workdir:
    raise app.UsageError('give --workdir=DIR (this config sets no default)')
  workdir = storage.expand(workdir)
  if stages == ['report']:
    stages = workdir_lib.report_stages(config, workdir)
    print(f'report: running {", ".join(stages)}', flush=True)
  for path in (workdir, config.data.episodes, config.data.data_dir):
    if path and storage.is_url(path):
      try:  # a missing gcsfs now, not after the first stage
        storage.filesystem(path)
      except (ImportError, ValueError) as e:
        raise app.UsageError(str(e)) from e
  try:
    # Before anything starts jax's backends: they read both.
    mesh_lib.split_cpu(config.mesh.get('cpu_devices', 0))
    distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value,
                           _NUM_PROCESSES.value, _PROCESS_ID.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  later = [s for s in stages if s in ONE_PROCESS]
  if jax.process_count() > 1 and later:
    advice = (f'{",".join(later)} run in one process: afterwards, on one '
              f'machine that sees the workdir, run\n  python -m mirai_jax.main '
              f'--config=... --workdir={workdir} --mode={",".join(later)} '
              '--distributed=off')
    if _MODE.value and _MODE.value != 'report':
      raise app.UsageError(advice)
    stages = [s for s in stages if s not in ONE_PROCESS]
    if jax.process_index() == 0:
      print(f'skipping {advice}', flush=True)
  # Every field and folder before any compute: a wrong value would
  # otherwise surface minutes later, or after results it cannot write.
  checks.validate(config, stages)
  checks.startup(config, workdir, stages)
  # The splits the stages read, and their batches against the split sizes:
  # now if the dataset is built, else as soon as the data stage built it.
  if 'data' not in stages:
    workdir_lib.check_built(config, workdir, stages)
  for i, stage in enumerate(stages):
    logging.info('stage %s', stage)
    try:
      out = STAGES[stage](config, workdir)
      if stage == 'data':
        workdir_lib.check_splits(config, stages[i + 1:], out)
    except loop.Preempted as e:
      print(str(e), file=sys.stderr, flush=True)
      sys.exit(e.exit_code)
    except app.UsageError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      # Missing inputs (episodes, an earlier stage's output), wrong values
      # and full disks are the user's next step, not a crash: say it
      # without a traceback.
      errors.exit_if_users(e, f'{stage}: ')
      raise


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=errors.parse_flags)
