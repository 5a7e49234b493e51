"""Runs one experiment: `python run.py --experiment=NAME[:VARIANT] [--config.KEY=VALUE]`.

The only file that defines flags. Problems a user can fix end in one line on stderr
and exit code 2.
"""

import re
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from flipnum_jax import runner
from flipnum_jax.errors import FlipnumError

FLAGS = flags.FLAGS
flags.DEFINE_string('experiment', None,
                    'experiments/NAME.py to run, optionally NAME:VARIANT.')
flags.DEFINE_string('workdir', 'runs', 'Root folder of everything the run writes.')
flags.DEFINE_string('data_dir', None,
                    'Folder with the MNIST IDX files; overrides $FLIPNUM_DATA_DIR.')
flags.mark_flag_as_required('experiment')


def _fail(message: str) -> None:
  print(f'run.py: error: {message}', file=sys.stderr)
  sys.exit(2)


def _parse_flags(argv: list[str]) -> list[str]:
  """Parses the plain flags, loads the experiment, then its `--config.*` overrides."""
  try:
    FLAGS(argv, known_only=True)
    name, config = runner.load_config(FLAGS.experiment)
    for arg in argv:
      key = re.match(r'--?(?:no)?config\.([^=]+)', arg)
      if key and not runner.has_key(config, key.group(1)):
        _fail(f'experiment {name} has no config key {key.group(1)!r} (see '
              f'experiments/{name}.py)')
    config_flags.DEFINE_config_dict('config', config, sys_argv=argv)
    FLAGS.unparse_flags()
    rest = FLAGS(argv)
  except (flags.Error, FlipnumError) as e:
    _fail(str(e).splitlines()[0])
  return rest


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(f'unexpected arguments: {" ".join(argv[1:])}')
  runner.quiet_library_logs()
  try:
    runner.initialize_distributed()
    runner.run(runner.output_name(FLAGS.experiment), FLAGS.config, FLAGS.workdir,
               FLAGS.data_dir)
  except FlipnumError as e:
    _fail(str(e))


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
