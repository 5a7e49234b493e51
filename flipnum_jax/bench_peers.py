"""The kit's hot paths ported to PyTorch, for `bench` to time side by side.

Four ports, each the same architecture with the weights copied from the Flax model:
- the batched ascent (the old main method): the same objective
  (log p(a | x) + log p(b | rot180 x)), optimizer (Adam) and steps, all pairs in one
  batch;
- the main job's sampler (`flow.sample_flips` with the `pairs` settings): the U-Net
  (`torch_unet`), classifier-free guidance, both views averaged with both views and
  both labellings as one batch of 4N, and at every step the flip objective's gradient
  at the clean estimate, on the generating classifier, scaled to unit RMS times
  `classifier_weight`. The objective's random jitter, rotations and scalings are
  ported with IDENTICAL draws: `objective_draws` computes, with JAX from the kit's
  own keys, the warps `sample_flips` draws inside, and the port applies them
  (`grid_sample`, bilinear, zeros outside, as `views.affine_warp`). So the port does
  the same work and, from the same noise, lands on the same images (tests/test_bench.py);
- the classifier's training step (AdamW, ±`max_shift`-pixel shifts);
- the U-Net's training step (the flow-matching loss with label dropout, AdamW, EMA
  of the weights).
PyTorch is an optional, bench-only dependency: the kit never needs it, and `bench`
skips these peers when it cannot import it. Every port runs on as many threads as
the machine has cores (`import_torch`), as XLA's CPU backend does.
"""

import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flipnum_jax import models
from flipnum_jax import objectives
from flipnum_jax import timing
from flipnum_jax import views


def import_torch():
  """PyTorch on every core, or None when it does not import."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count())
  return torch


def _tensor(array) -> Any:
  import torch  # pylint: disable=import-outside-toplevel
  return torch.tensor(np.asarray(array))


def framework() -> dict[str, Any]:
  """What a peer's figures were taken with."""
  import torch  # pylint: disable=import-outside-toplevel
  return {'framework': f'PyTorch {torch.__version__}', 'threads': torch.get_num_threads()}


# --- Ported networks ---------------------------------------------------------------


def _conv(source: nnx.Conv, stride: int = 1, padding: int | None = None):
  """A Conv2d with the weights of `source` (HWIO → OIHW), padded by `padding` on each
  side. By default, 'SAME' padding for the kit's stride-1 kernels, k // 2; none for
  strided ones, whose callers pad themselves."""
  import torch  # pylint: disable=import-outside-toplevel
  kernel = np.asarray(source.kernel[...])
  if padding is None:
    padding = kernel.shape[0] // 2 if stride == 1 else 0
  layer = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[:2],
                          stride=stride, padding=padding)
  layer.weight.data = _tensor(kernel.transpose(3, 2, 0, 1).copy())
  layer.bias.data = _tensor(source.bias[...])
  return layer


def _linear(source: nnx.Linear):
  import torch  # pylint: disable=import-outside-toplevel
  kernel = np.asarray(source.kernel[...])
  layer = torch.nn.Linear(*kernel.shape)
  layer.weight.data = _tensor(kernel.T.copy())
  layer.bias.data = _tensor(source.bias[...])
  return layer


def _group_norm(source: nnx.GroupNorm):
  import torch  # pylint: disable=import-outside-toplevel
  scale = np.asarray(source.scale[...])
  layer = torch.nn.GroupNorm(source.num_groups, scale.shape[0], eps=source.epsilon)
  layer.weight.data = _tensor(scale)
  layer.bias.data = _tensor(source.bias[...])
  return layer


def torch_classifier(classifier: models.Classifier):
  """A torch.nn.Module computing the same logits as `classifier` (a strided CNN
  whose 'SAME' padding is 1 on each side for the kit's 4×4, stride-2 layers)."""
  import torch  # pylint: disable=import-outside-toplevel

  class Ported(torch.nn.Module):

    def __init__(self):
      super().__init__()
      self.convs = torch.nn.ModuleList([
          _conv(conv, stride=2, padding=(conv.kernel[...].shape[0] - 2) // 2)
          for conv in classifier.convs])
      self.dense = torch.nn.ModuleList([_linear(classifier.hidden),
                                        _linear(classifier.out)])

    def forward(self, images):
      x = images[:, None]
      for conv in self.convs:
        x = torch.relu(conv(x))
      x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # flatten as Flax does (NHWC)
      return self.dense[1](torch.relu(self.dense[0](x)))

  return Ported()


def torch_unet(unet: models.UNet):
  """A torch.nn.Module computing the same velocity as `unet` (`models.UNet`): the
  2×2 space-to-depth fold is `pixel_unshuffle` (same channel order), the strided
  'SAME' convolution pads only after (0 before, 1 after, 14 → 7), and the nearest
  resize 7 → 14 repeats each row and column."""
  import torch  # pylint: disable=import-outside-toplevel
  functional = torch.nn.functional

  class Block(torch.nn.Module):

    def __init__(self, block: models.ResBlock):
      super().__init__()
      self.norm1, self.norm2 = _group_norm(block.norm1), _group_norm(block.norm2)
      self.conv1, self.conv2 = _conv(block.conv1), _conv(block.conv2)
      self.cond = _linear(block.cond)
      self.skip = _conv(block.skip) if block.skip is not None else None

    def forward(self, x, cond):
      h = self.conv1(functional.silu(self.norm1(x))) + self.cond(cond)[:, :, None, None]
      h = self.conv2(functional.silu(self.norm2(h)))
      return h + (self.skip(x) if self.skip is not None else x)

  class Ported(torch.nn.Module):

    def __init__(self):
      super().__init__()
      self.time_in, self.time_out = _linear(unet.time_in), _linear(unet.time_out)
      self.label = torch.nn.Embedding.from_pretrained(
          _tensor(unet.label.embedding[...]), freeze=False)
      self.conv_in, self.conv_out = _conv(unet.conv_in), _conv(unet.conv_out)
      self.down = Block(unet.down)
      self.downsample = _conv(unet.downsample, stride=2)
      self.middle1, self.middle2 = Block(unet.middle1), Block(unet.middle2)
      self.upsample = _conv(unet.upsample)
      self.up = Block(unet.up)
      self.norm_out = _group_norm(unet.norm_out)
      half = unet.cond_dim // 2
      self.register_buffer('frequencies', torch.exp(
          -math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half))

    def forward(self, images, times, labels):
      angles = 1000.0 * times[:, None] * self.frequencies
      time_features = torch.cat([torch.sin(angles), torch.cos(angles)], -1)
      cond = self.time_out(functional.silu(self.time_in(time_features))) + self.label(labels)
      x = self.conv_in(functional.pixel_unshuffle(images[:, None], 2))
      skip = self.down(x, cond)
      h = torch.relu(self.downsample(functional.pad(skip, (0, 1, 0, 1))))
      h = self.middle2(self.middle1(h, cond), cond)
      h = functional.interpolate(h, scale_factor=2, mode='nearest')
      h = self.up(torch.cat([self.upsample(h), skip], 1), cond)
      h = self.conv_out(functional.silu(self.norm_out(h)))
      return functional.pixel_shuffle(h, 2)[:, 0]

  return Ported()


def frozen(module):
  """`module` in eval mode with no parameter gradients (only input gradients)."""
  for parameter in module.parameters():
    parameter.requires_grad_(False)
  return module.eval()


# --- The ascent --------------------------------------------------------------------


def torch_ascent(graphdef: nnx.GraphDef, params: nnx.State, init: np.ndarray,
                 pairs: np.ndarray, steps: int, learning_rate: float,
                 repeats: int) -> dict[str, Any] | None:
  """Median seconds of the ported ascent, and the largest logit difference from the
  Flax model on `init` (the port's check); None when PyTorch is not importable."""
  torch = import_torch()
  if torch is None:
    return None
  classifier = nnx.merge(graphdef, params)
  model = frozen(torch_classifier(classifier))
  start_images = torch.tensor(np.asarray(init))
  with torch.no_grad():
    logit_error = float(np.max(np.abs(model(start_images).numpy()
                                      - np.asarray(classifier(init)))))
  upright, turned = torch.tensor(np.asarray(pairs[:, 0])), torch.tensor(np.asarray(pairs[:, 1]))
  rows = torch.arange(len(pairs))

  def ascend():
    x = start_images.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=learning_rate)
    for _ in range(steps):
      optimizer.zero_grad()
      log_probs = torch.log_softmax(model(torch.cat([x, torch.flip(x, (1, 2))])), -1)
      score = (log_probs[rows, upright] + log_probs[len(pairs) + rows, turned]).sum()
      (-score).backward()
      optimizer.step()
      with torch.no_grad():
        x.clamp_(0.0, 1.0)
    return x

  return {**framework(), 'task': 'ascent',
          'seconds': timing.median_seconds(ascend, repeats),
          'max_logit_difference': logit_error}


# --- The sampler -------------------------------------------------------------------


def objective_draws(objective: objectives.FlipObjective, key: jax.Array, steps: int,
                    count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
  """The warps `flow.sample_flips(key=key, steps=steps)` draws for its objective:
  angles and scales (steps, count, 2·samples) and shifts (…, 2), per step, image
  and transformed copy (upright copies first), from the kit's key chain — the step
  keys of `flow.integrate`, one key per image, 2·samples per image
  (`FlipObjective.view_scores`), each a `views.random_warp`. None when the
  objective warps nothing."""
  if not (objective.jitter or objective.rotation_degrees or objective.scale_range):
    return None
  warp = lambda k: views.random_warp(k, objective.jitter, objective.rotation_degrees,
                                     objective.scale_range)
  per_image = lambda k: jax.vmap(warp)(jax.random.split(k, 2 * objective.samples))
  per_step = lambda k: jax.vmap(per_image)(jax.random.split(k, count))
  return tuple(np.asarray(d) for d in jax.vmap(per_step)(jax.random.split(key, steps)))


def affine_warp(images, angles, scales, shifts):
  """`views.affine_warp` of images (M, 28, 28) by angles, scales (M,) and shifts
  (M, 2), with PyTorch's bilinear `grid_sample` (pixel-centre coordinates, zeros
  outside: align_corners=True, padding 'zeros')."""
  import torch  # pylint: disable=import-outside-toplevel
  size = images.shape[-1]
  centre = (size - 1) / 2
  offsets = torch.arange(size, dtype=torch.float32) - centre
  rows, cols = offsets[:, None], offsets[None, :]
  cos = (torch.cos(angles) / scales)[:, None, None]
  sin = (torch.sin(angles) / scales)[:, None, None]
  src_rows = cos * rows - sin * cols + centre + shifts[:, 0, None, None]
  src_cols = sin * rows + cos * cols + centre + shifts[:, 1, None, None]
  grid = torch.stack([src_cols, src_rows], -1) * (2.0 / (size - 1)) - 1.0
  return torch.nn.functional.grid_sample(images[:, None], grid, mode='bilinear',
                                         padding_mode='zeros', align_corners=True)[:, 0]


def flip_objective(classifier, objective: objectives.FlipObjective, images, pairs,
                   warps):
  """`objective` (soft-min or sum of the views' scores, mean over `samples` warped
  copies) for each of images (N, 28, 28): (N,). `warps` are one step's
  `objective_draws`, or None."""
  import torch  # pylint: disable=import-outside-toplevel
  if objective.tv_weight or objective.l2_weight or objective.blur_weight or objective.crisp:
    raise ValueError('the PyTorch port has the flip scores only: no penalties, no crisp')
  n, samples = images.shape[0], objective.samples
  both = torch.stack([images, images.flip((1, 2))], 1)
  if warps is not None:
    both = both.repeat_interleave(samples, 1).reshape(-1, *images.shape[1:])
    both = affine_warp(both, *(w.reshape(-1, *w.shape[2:]) for w in warps))
  log_probs = torch.log_softmax(classifier(both.reshape(-1, *images.shape[1:])), -1)
  log_probs = log_probs.reshape(n, 2, samples, -1).mean(2)
  rows = torch.arange(n)
  scores = torch.stack([log_probs[rows, 0, pairs[:, 0]], log_probs[rows, 1, pairs[:, 1]]], 1)
  if objective.softmin_temperature:
    t = objective.softmin_temperature
    return -t * torch.logsumexp(-scores / t, 1)
  return scores.sum(1)


def flip_velocity(unet, noisy, time, pairs, guidance):
  """`flow.flip_velocity`: both views, conditional and unconditional, as one batch
  of 4N through the network."""
  import torch  # pylint: disable=import-outside-toplevel
  n = noisy.shape[0]
  both_views = torch.cat([noisy, noisy.flip((1, 2))])
  labels = torch.cat([pairs[:, 0], pairs[:, 1]])
  out = unet(torch.cat([both_views, both_views]), time.expand(4 * n),
             torch.cat([labels, torch.full_like(labels, models.NO_CLASS)]))
  conditional, unconditional = out[:2 * n], out[2 * n:]
  guided = unconditional + guidance * (conditional - unconditional)
  return 0.5 * (guided[:n] + guided[n:].flip((1, 2)))


def sample_flips(unet, classifier, objective: objectives.FlipObjective, noise, pairs,
                 times, guidance: float, classifier_weight: float, draws):
  """`flow.sample_flips` with velocity combination and classifier guidance (the
  `pairs` settings): Euler steps over `times` (steps + 1,) from `noise` (N, 28, 28);
  `draws`: `objective_draws` as tensors."""
  import torch  # pylint: disable=import-outside-toplevel
  signal = noise
  for step in range(len(times) - 1):
    time, next_time = times[step], times[step + 1]
    with torch.no_grad():
      velocity = flip_velocity(unet, signal, time, pairs, guidance)
    estimate = ((signal - time * velocity + 1.0) / 2.0).clamp(0.0, 1.0).requires_grad_(True)
    warps = None if draws is None else tuple(d[step] for d in draws)
    score = flip_objective(classifier, objective, estimate, pairs, warps).sum()
    gradient, = torch.autograd.grad(score, estimate)
    rms = gradient.square().mean((1, 2), keepdim=True).sqrt()
    # Euler steps go backwards in time, so subtracting from v adds to the image.
    velocity = velocity - classifier_weight * gradient / (rms + 1e-12)
    signal = signal + (next_time - time) * velocity
  return ((signal + 1.0) / 2.0).clamp(0.0, 1.0)


def torch_sampler(unet: models.UNet, classifier: models.Classifier,
                  objective: objectives.FlipObjective, noise: jax.Array, pairs: jax.Array,
                  key: jax.Array, guidance: float, classifier_weight: float, steps: int,
                  repeats: int, reference: jax.Array) -> dict[str, Any] | None:
  """Median seconds of the ported sampler from `noise`, and how it agrees with the
  kit's images `reference` (the port's check): the share of images within 1e-4 of
  the kit's everywhere, and the largest pixel difference. Most images agree to
  float32 rounding; a few do not, because the classifier's gradient is piecewise
  (ReLU): where a unit's input lies within rounding of 0, the two frameworks may
  take different sides, which changes that image's gradient by a finite amount (seen
  in ≈ 1 image in 100 with random weights, whose zero biases put many inputs at 0).
  None when PyTorch is not importable. The warps are drawn before the timing (with
  JAX, from the kit's keys), the only work the kit does that the timed port does not."""
  torch = import_torch()
  if torch is None:
    return None
  ported_unet, ported_classifier = frozen(torch_unet(unet)), frozen(torch_classifier(classifier))
  draws = objective_draws(objective, key, steps, noise.shape[0])
  draws = None if draws is None else tuple(_tensor(d) for d in draws)
  # Python floats of the float32 values: PyTorch multiplies float32 tensors by them
  # in float32, as the kit does.
  inputs = (_tensor(noise), _tensor(pairs), _tensor(jnp.linspace(1.0, 0.0, steps + 1)),
            float(np.float32(guidance)), float(np.float32(classifier_weight)), draws)
  run = lambda: sample_flips(ported_unet, ported_classifier, objective, *inputs)
  difference = np.abs(run().numpy() - np.asarray(reference)).max((1, 2))
  return {**framework(), 'task': 'sampler', 'seconds': timing.median_seconds(run, repeats),
          'images_within_1e-4': float(np.mean(difference < 1e-4)),
          'max_image_difference': float(difference.max())}


# --- Training steps ----------------------------------------------------------------


def _training(model, loss: Callable[[], Any], learning_rate: float, weight_decay: float,
              ema_decay: float, batch_size: int, repeats: int, task: str) -> dict[str, Any]:
  """Median seconds of one AdamW step on `loss()` (and the EMA update when
  `ema_decay`), and images/s."""
  import torch  # pylint: disable=import-outside-toplevel
  parameters = list(model.parameters())
  optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay,
                                foreach=True)
  ema = [p.detach().clone() for p in parameters] if ema_decay else None

  def step():
    optimizer.zero_grad()
    loss().backward()
    optimizer.step()
    if ema:
      with torch.no_grad():
        torch._foreach_lerp_(ema, parameters, 1.0 - ema_decay)  # pylint: disable=protected-access

  seconds = timing.median_seconds(step, repeats)
  return {**framework(), 'task': task, 'batch_size': batch_size, 'seconds': seconds,
          'images_per_second': batch_size / seconds}


def _batch_pool(torch, batch_size: int):
  """Four batches' worth of random digits and labels, and the indices of the first
  batch: the training ports index a pool on the device as `train.fit_step` does."""
  return (torch.rand(batch_size * 4, 28, 28), torch.arange(batch_size * 4) % 10,
          torch.arange(batch_size))


def torch_classifier_training(classifier: models.Classifier, batch_size: int,
                              max_shift: int, learning_rate: float, weight_decay: float,
                              repeats: int) -> dict[str, Any] | None:
  """The classifier's training step (`train.ClassifierLoss(max_shift)`: each image
  moved by its own random integer offset in ±max_shift, zeros shifted in; cross-
  entropy; AdamW), on a batch indexed from a pool as `train.fit_step` does."""
  torch = import_torch()
  if torch is None:
    return None
  model = torch_classifier(classifier).train()
  pool, labels, batch = _batch_pool(torch, batch_size)
  size = pool.shape[-1]
  window = torch.arange(size)

  def loss():
    images = torch.nn.functional.pad(pool[batch], (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (batch_size, 2))
    rows = (offsets[:, 0, None] + window)[:, :, None]
    cols = (offsets[:, 1, None] + window)[:, None, :]
    shifted = images[batch[:, None, None], rows, cols]
    return torch.nn.functional.cross_entropy(model(shifted), labels[batch])

  return _training(model, loss, learning_rate, weight_decay, 0.0, batch_size, repeats,
                   'classifier training')


def torch_unet_training(unet: models.UNet, batch_size: int, label_dropout: float,
                        learning_rate: float, weight_decay: float, ema_decay: float,
                        repeats: int) -> dict[str, Any] | None:
  """The U-Net's training step (`train.FlowMatchingLoss`: random times and noise,
  labels dropped to "no class" at `label_dropout`, the velocity's squared error;
  AdamW; the weights' EMA). The learning rate is constant where the kit's follows
  its warm-up-cosine schedule: one scalar per step, no measurable work."""
  torch = import_torch()
  if torch is None:
    return None
  model = torch_unet(unet).train()
  pool, labels, batch = _batch_pool(torch, batch_size)

  def loss():
    signal = 2.0 * pool[batch] - 1.0
    noise = torch.randn_like(signal)
    times = torch.rand(batch_size)
    dropped = torch.where(torch.rand(batch_size) < label_dropout, models.NO_CLASS,
                          labels[batch])
    noisy = (1.0 - times[:, None, None]) * signal + times[:, None, None] * noise
    return torch.mean((model(noisy, times, dropped) - (noise - signal)) ** 2)

  return _training(model, loss, learning_rate, weight_decay, ema_decay, batch_size,
                   repeats, 'U-Net training')
