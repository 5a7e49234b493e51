"""The few exception types the library raises for problems a user can fix.

`run.py` turns each of them into a one-line message and exit code 2; anything else
is a bug and keeps its traceback.
"""


class FlipnumError(Exception):
  """Base class: a problem with the user's input, data, config or files."""


class DataError(FlipnumError):
  """MNIST is missing, incomplete or corrupt."""


class ConfigError(FlipnumError):
  """An experiment or a config value is invalid."""


class CheckpointError(FlipnumError):
  """A saved model cannot be read."""


class TrainingError(FlipnumError):
  """Training diverged (a non-finite loss)."""
