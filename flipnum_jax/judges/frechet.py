"""Fréchet distance between two sets of feature vectors (an FID for this domain)."""

import numpy as np


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh(matrix)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½) for features (N, D) and (M, D)."""
  a, b = features_a.astype(np.float64), features_b.astype(np.float64)
  mean_a, mean_b = a.mean(0), b.mean(0)
  cov_a = np.atleast_2d(np.cov(a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(b, rowvar=False))
  # tr((Σa Σb)^½) = tr((Σa^½ Σb Σa^½)^½), whose argument is symmetric PSD.
  root_a = _sqrt_psd(cov_a)
  middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
  trace_root = np.sum(np.sqrt(np.clip(middle, 0.0, None)))
  return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
               - 2 * trace_root)
