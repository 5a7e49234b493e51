"""The judge panel: independently trained classifiers plus a nearest-neighbour judge.

Each classifier judge is trained and cached like the generating classifier, under
`<workdir>/models/judge_*/`; the adversarially trained one also records its accuracy
under a PGD attack in its `metrics.json`.
"""

import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from flipnum_jax import data
from flipnum_jax import io
from flipnum_jax import models
from flipnum_jax import train
from flipnum_jax.judges import knn


@functools.partial(jax.jit, static_argnames=('graphdef', 'steps'))
def pgd_attack(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
               labels: jax.Array, key: jax.Array, *, epsilon: float, steps: int,
               step_size: float) -> jax.Array:
  """L∞ projected gradient ascent on the loss from a random start (Madry et al.)."""
  loss = lambda x: train.cross_entropy(graphdef, params, x, labels)[0] * x.shape[0]
  start = jnp.clip(images + jax.random.uniform(key, images.shape, minval=-epsilon,
                                               maxval=epsilon), 0.0, 1.0)

  def step(_, x):
    x = x + step_size * jnp.sign(jax.grad(loss)(x))
    return jnp.clip(jnp.clip(x, images - epsilon, images + epsilon), 0.0, 1.0)

  return jax.lax.fori_loop(0, steps, step, start)


def robustness_metrics(config: ml_collections.ConfigDict, model: nnx.Module,
                       mnist: data.Mnist) -> dict[str, Any]:
  """Clean and PGD accuracy on the first `config.examples` test images."""
  graphdef, params = nnx.split(model)
  images = mnist.test_images[:config.examples]
  labels = jnp.asarray(mnist.test_labels[:config.examples])
  attacked = pgd_attack(graphdef, params, jnp.asarray(data.to_float(images)), labels,
                        jax.random.key(config.seed), epsilon=config.epsilon,
                        steps=config.steps, step_size=config.step_size)
  pgd = float(jnp.mean(jnp.argmax(models.apply(graphdef, params, attacked), -1) == labels))
  clean = train.accuracy(graphdef, params, images, np.asarray(labels))
  logging.info('PGD-%d at ε=%.2f on %d test images: accuracy %.4f (clean %.4f).',
               config.steps, config.epsilon, config.examples, pgd, clean)
  return {'pgd': {'epsilon': config.epsilon, 'steps': config.steps,
                  'step_size': config.step_size, 'examples': config.examples,
                  'accuracy': pgd, 'clean_accuracy': clean}}


class Panel(NamedTuple):
  classifiers: dict[str, tuple[nnx.GraphDef, nnx.State]]
  metrics: dict[str, dict[str, Any]]
  neighbours: knn.NearestNeighbours
  k: int


def load_panel(config: ml_collections.ConfigDict, workspace: io.Workspace) -> Panel:
  """Trains (first time) or loads every judge that `config.judges` names."""
  classifiers, metrics = {}, {}
  start = time.perf_counter()
  for name, judge_config in config.judges.items():
    extra = (functools.partial(robustness_metrics, config.pgd)
             if judge_config.adversarial.epsilon else None)
    model, metrics[name] = train.get_model('classifier', judge_config, workspace, extra)
    classifiers[name] = nnx.split(model)
  logging.info('Judges ready in %.0f s.', time.perf_counter() - start)
  mnist = workspace.mnist
  neighbours = knn.from_mnist(mnist, config.knn.train_examples)
  metrics['knn'] = {'test_accuracy': knn_accuracy(neighbours, mnist, config.knn.k)}
  return Panel(classifiers, metrics, neighbours, config.knn.k)


def knn_accuracy(neighbours: knn.NearestNeighbours, mnist: data.Mnist, k: int,
                 examples: int = 1000) -> float:
  probabilities, _ = knn.query(neighbours, data.to_float(mnist.test_images[:examples]), k)
  return float(np.mean(probabilities.argmax(1) == mnist.test_labels[:examples]))


@functools.partial(jax.jit, static_argnames=('graphdef',))
def _probabilities(graphdef: nnx.GraphDef, params: nnx.State,
                   images: jax.Array) -> jax.Array:
  return jax.nn.softmax(train.predict(graphdef, params, images, batch_size=images.shape[0]))


def probabilities(panel: Panel, images: np.ndarray) -> dict[str, np.ndarray]:
  """Per judge, class probabilities (N, classes) of images (N, 28, 28) as they are."""
  out = {name: np.asarray(_probabilities(graphdef, params, jnp.asarray(images)))
         for name, (graphdef, params) in panel.classifiers.items()}
  out['knn'] = knn.query(panel.neighbours, images, panel.k)[0]
  return out


def view_probabilities(panel: Panel, images: np.ndarray) -> dict[str, np.ndarray]:
  """Per judge, class probabilities (2, N, classes): upright view, then turned view."""
  upright = probabilities(panel, images)
  turned = probabilities(panel, images[:, ::-1, ::-1])
  return {name: np.stack([upright[name], turned[name]]) for name in upright}


def penultimate_features(panel: Panel, judge: str, images: np.ndarray) -> np.ndarray:
  graphdef, params = panel.classifiers[judge]
  return np.asarray(nnx.merge(graphdef, params).penultimate(jnp.asarray(images)))
