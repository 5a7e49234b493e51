"""The kit's batched ascent ported to PyTorch, for `bench` to time side by side.

Same architecture and weights (copied from the Flax model), same objective
(log p(a | x) + log p(b | rot180 x)), same optimizer (Adam) and steps, all pairs in
one batch. PyTorch is an optional, bench-only dependency: the kit never needs it,
and `bench` skips this peer when it cannot import it.
"""

import time
from typing import Any

import numpy as np
from flax import nnx

from flipnum_jax import models


def torch_classifier(classifier: models.Classifier):
  """A torch.nn.Module computing the same logits as `classifier` (a strided CNN
  whose 'SAME' padding is 1 on each side for the kit's 4×4, stride-2 layers)."""
  import torch  # pylint: disable=import-outside-toplevel

  class Ported(torch.nn.Module):

    def __init__(self):
      super().__init__()
      self.convs = torch.nn.ModuleList()
      for conv in classifier.convs:
        kernel = np.asarray(conv.kernel[...])  # HWIO
        layer = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[:2],
                                stride=2, padding=(kernel.shape[0] - 2) // 2)
        layer.weight.data = torch.tensor(kernel.transpose(3, 2, 0, 1).copy())
        layer.bias.data = torch.tensor(np.asarray(conv.bias[...]))
        self.convs.append(layer)
      self.dense = [torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)]
      for layer, source in zip(self.dense, (classifier.hidden, classifier.out)):
        layer.weight.data = torch.tensor(np.asarray(source.kernel[...]).T.copy())
        layer.bias.data = torch.tensor(np.asarray(source.bias[...]))
      self.dense = torch.nn.ModuleList(self.dense)

    def forward(self, images):
      x = images[:, None]
      for conv in self.convs:
        x = torch.relu(conv(x))
      x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # flatten as Flax does (NHWC)
      return self.dense[1](torch.relu(self.dense[0](x)))

  return Ported()


def torch_ascent(graphdef: nnx.GraphDef, params: nnx.State, init: np.ndarray,
                 pairs: np.ndarray, steps: int, learning_rate: float,
                 repeats: int) -> dict[str, Any] | None:
  """Median seconds of the ported ascent, and the largest logit difference from the
  Flax model on `init` (the port's check); None when PyTorch is not importable."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  classifier = nnx.merge(graphdef, params)
  model = torch_classifier(classifier).eval()
  for parameter in model.parameters():
    parameter.requires_grad_(False)
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

  ascend()  # warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    ascend()
    times.append(time.perf_counter() - start)
  return {'framework': f'PyTorch {torch.__version__}', 'threads': torch.get_num_threads(),
          'seconds': float(np.median(times)), 'max_logit_difference': logit_error}
