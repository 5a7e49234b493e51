"""The retrieval generator: nothing is drawn. Each pair's candidates are real
training digits of class a whose turned view the guide reads best as b — lever 7
of the readers' issue at its limit, a person's strokes left as they are.

Every training digit of class a is already read as a upright (it is one); what a
pair asks of it is its 180° turn. `best_flips` reads the first `per_class` training
digits of each class upright and turned with the guide (the generating classifier,
or with `readability_guides` a readability model learned from blind readings of
unreported images) and keeps, for each pair (a, b), the K digits a whose weaker
reading, min(log p(a | x), log p(b | rot180 x)), is highest. Only training digits
are searched: the test split stays the judges' and the readers' controls.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from flipnum_jax import io
from flipnum_jax import objectives
from flipnum_jax import sharding
from flipnum_jax import timing
from flipnum_jax.errors import ConfigError
from flipnum_jax.generators import base
from flipnum_jax.generators import flow
from flipnum_jax.generators import handwriting

# Digits read per forward pass: the guide's activations for a whole class at once
# would take gigabytes.
_CHUNK = 500


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      'name': 'retrieval',
      # training digits per class searched (the first ones; MNIST's smallest
      # class, 5, has 5,421)
      'per_class': 5000})


def check(config: ml_collections.ConfigDict) -> None:
  if config.per_class < 1:
    raise ConfigError(f'generator.per_class must be ≥ 1, not {config.per_class}')


@functools.partial(jax.jit, static_argnames=('graphdef', 'count'))
def best_flips(graphdef: nnx.GraphDef, params: nnx.State, pools: jax.Array,
               pairs: jax.Array, *, count: int) -> tuple[jax.Array, jax.Array]:
  """For each pair (a, b) of `pairs` (P, 2), the `count` digits of `pools[a]`
  (`handwriting.class_pools`, (10, n, 28, 28)) whose weaker reading by the
  classifier (graphdef, params), min(log p(a | x), log p(b | rot180 x)), is
  highest: their indices into `pools[a]` (P, count), best first, and those
  weaker readings (P, count)."""
  per_class = pools.shape[1]
  digits = pools.reshape(-1, *pools.shape[2:])
  chunk = min(_CHUNK, len(digits))
  padded = jnp.pad(digits, ((0, -len(digits) % chunk), (0, 0), (0, 0)))
  read = jax.vmap(objectives.view_log_probs, in_axes=(None, None, 0))
  # (10, n, 2, classes): every pool digit read upright and turned, a chunk at a time.
  log_probs = jax.lax.map(lambda batch: read(graphdef, params, batch),
                          padded.reshape(-1, chunk, *digits.shape[1:]))
  log_probs = log_probs.reshape(-1, *log_probs.shape[2:])[:len(digits)]
  log_probs = log_probs.reshape(10, per_class, 2, -1)

  def one_pair(pair):
    own = log_probs[pair[0]]
    weaker = jnp.minimum(own[:, 0, pair[0]], own[:, 1, pair[1]])
    scores, chosen = jax.lax.top_k(weaker, count)
    return chosen, scores

  return jax.lax.map(one_pair, pairs)


def draw(config: ml_collections.ConfigDict, candidate_pairs: np.ndarray,
         guide: base.Guide, workspace: io.Workspace, key: jax.Array) -> base.Drawn:
  """The k-th candidate of each pair is the training digit a with the k-th best
  weaker reading by the guide (`best_flips`); deterministic, so `key` is unused."""
  del key  # a search, not a draw
  group, rank, size = flow.resampling_groups(candidate_pairs)
  smallest = int(np.bincount(workspace.mnist.train_labels, minlength=10).min())
  if config.per_class > smallest:
    raise ConfigError(f'generator.per_class ({config.per_class}) is more than the '
                      f'smallest class has ({smallest})')
  if size.max() > config.per_class:
    raise ConfigError(f'{size.max()} candidates per pair, but only generator.per_class '
                      f'= {config.per_class} digits to choose from')
  pools = jnp.asarray(handwriting.class_pools(workspace.mnist, config.per_class))
  pairs = candidate_pairs[rank == 0]
  (chosen, _), seconds = timing.compile_and_run(
      best_flips, guide.graphdef, guide.params, pools, jnp.asarray(pairs),
      count=int(size.max()))
  logging.info('Searched %d training digits for %d pairs: compile %.1f s, run %.1f s.',
               10 * config.per_class, len(pairs), seconds.compile, seconds.run)
  chosen = sharding.to_host(chosen)
  images = np.asarray(pools)[pairs[group, 0], chosen[group, rank]]
  return base.Drawn(images, None, seconds, 1)
