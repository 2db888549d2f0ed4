"""Distance to the real set: in label distribution and in embedding space.

- Jensen-Shannon divergence of the label distributions, base 2 (0: the same distribution, 1: disjoint).
- Precision / recall / density / coverage (Naeem et al. 2020, the ``prdc`` package) with k nearest neighbours:
  precision is the share of synthetic utterances that fall inside the real data's neighbourhoods (realism),
  recall the share of real ones inside the synthetic data's (how much of the real variety is covered), density a
  precision that counts how many neighbourhoods (can exceed 1), coverage the share of real neighbourhoods holding
  a synthetic point.
- The Fréchet distance between Gaussians fitted to both embedding clouds (the FID formula).

All embedding figures depend on the sample size, so both sides are sampled to the same size and the size is
reported; the real column compares the real test split with the real train split at that size, for scale.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from scipy.spatial.distance import jensenshannon


def label_divergence(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """JS divergence (base 2) between the label histograms of class-id arrays ``a`` and ``b``."""
    p = np.bincount(a, minlength=n_classes).astype(float)
    q = np.bincount(b, minlength=n_classes).astype(float)
    if not p.sum() or not q.sum():
        return 1.0
    return float(jensenshannon(p, q, base=2) ** 2)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)). The trace of the matrix root is taken as the sum of
    the square roots of the eigenvalues of S_r^(1/2) S_f S_r^(1/2), a symmetric positive semi-definite matrix with
    the same eigenvalues as S_r S_f: real, and defined for the singular covariances of small samples, where
    ``scipy.linalg.sqrtm`` can return complex values."""
    mu = real.mean(axis=0) - fake.mean(axis=0)
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = _sqrt_psd(s_r)
    middle = np.linalg.eigvalsh(root @ s_f @ root)
    return float(mu @ mu + np.trace(s_r) + np.trace(s_f) - 2 * np.sqrt(np.clip(middle, 0, None)).sum())


def prdc(real: np.ndarray, fake: np.ndarray, nearest_k: int) -> dict[str, float]:
    """``prdc.compute_prdc`` (its "Num real/fake" prints kept off the console)."""
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):
        scores = compute_prdc(real_features=real, fake_features=fake, nearest_k=nearest_k)
    return {key: float(value) for key, value in scores.items()}


def embedding_distance(real: np.ndarray, fake: np.ndarray, size: int, nearest_k: int, seed: int
                       ) -> dict[str, float | int | None]:
    """PRDC and the Fréchet distance on ``min(size, len(real), len(fake))`` rows drawn from each side (None when
    that leaves fewer than ``nearest_k + 2`` points: prdc finds each point's k-th neighbour among the others with a
    partition at k + 1, so it needs k others and one more)."""
    n = min(size, len(real), len(fake))
    if n < nearest_k + 2:
        return {"precision": None, "recall": None, "density": None, "coverage": None, "frechet": None,
                "distance_sample": n}
    rng = np.random.default_rng(seed)
    real_rows = np.sort(rng.choice(len(real), size=n, replace=False))
    fake_rows = np.sort(rng.choice(len(fake), size=n, replace=False))
    r, f = real[real_rows].astype(np.float64), fake[fake_rows].astype(np.float64)
    return {**prdc(r, f, nearest_k), "frechet": frechet_distance(r, f), "distance_sample": n}
