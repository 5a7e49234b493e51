"""The dreams job: for each digit, the image the classifier finds most like it.

Writes `dreams.npz` (`digits`, `class_means`, `from_noise`, `from_mean`, each
float32 (10, 28, 28) in [0, 1]) and `dreams.png` into `<workdir>/<experiment>/`.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flipnum_jax import data
from flipnum_jax import io
from flipnum_jax import objectives
from flipnum_jax import pairs
from flipnum_jax import plots
from flipnum_jax import train
from flipnum_jax.generators import ascent


@jax.jit
def _digit_probs(graphdef: nnx.GraphDef, params: nnx.State, images: jax.Array,
                 digits: jax.Array) -> jax.Array:
  probs = jax.nn.softmax(train.predict(graphdef, params, images, batch_size=images.shape[0]))
  return probs[jnp.arange(digits.shape[0]), digits]


def run_experiment(config: ml_collections.ConfigDict, workspace: io.Workspace,
                   name: str) -> None:
  digits = pairs.check_digits('digits', config.digits)
  optimizer = ascent.make_optimizer(config.ascent)
  classifier, _ = train.get_classifier(config.classifier, workspace)
  graphdef, params = nnx.split(classifier)
  mnist = workspace.mnist
  images = data.to_float(mnist.train_images)
  class_means = np.stack([images[mnist.train_labels == d].mean(0) for d in digits])
  targets = jnp.asarray(digits)

  rows = [('class mean', class_means)]
  init_key, ascent_key = jax.random.split(jax.random.key(config.seed))
  for init in ('noise', 'mean'):
    start = ascent.INITS[init](np.stack([digits, digits], 1), mnist, init_key)
    result = ascent.timed_ascend(graphdef, params, start, targets,
                                 jax.random.split(ascent_key, len(digits)),
                                 objective=objectives.digit_score,
                                 optimizer=optimizer, steps=config.ascent.steps)
    rows.append((f'ascent from {init}', np.asarray(result.images)))
  probabilities = [np.asarray(_digit_probs(graphdef, params, jnp.asarray(imgs), targets))
                   for _, imgs in rows]

  out_dir = workspace.output_dir(name)
  io.write_npz(out_dir / 'dreams.npz', digits=digits, class_means=rows[0][1],
               from_noise=rows[1][1], from_mean=rows[2][1])
  plots.dreams_panel(out_dir / 'dreams.png',
                     [(label, imgs, p) for (label, imgs), p in zip(rows, probabilities)],
                     digits)
  print(f'{name}: mean classifier confidence — class means '
        f'{probabilities[0].mean():.3f}, from noise {probabilities[1].mean():.3f}, '
        f'from mean {probabilities[2].mean():.3f}; outputs in {out_dir}')
