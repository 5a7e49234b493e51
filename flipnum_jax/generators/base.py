"""What every generator takes and returns (see the package docstring)."""

from typing import NamedTuple

import numpy as np
from flax import nnx

from flipnum_jax import objectives
from flipnum_jax import timing


class Guide(NamedTuple):
  """The generating classifier (graphdef, weights) and the flip objective on it,
  for generators that push images towards being read (ascent, classifier guidance)."""
  graphdef: nnx.GraphDef
  params: nnx.State
  objective: objectives.FlipObjective


class Drawn(NamedTuple):
  """A generator's candidates: images (N, 28, 28) in [0, 1]; optionally its own
  typicality error per view (N, 2) (lower: more like a digit of the class, to the
  generator's model), by which `choose` prefers among readable candidates; the
  timing of the drawing program and how many steps it took."""
  images: np.ndarray
  typicality: np.ndarray | None
  seconds: timing.Seconds
  steps: int
