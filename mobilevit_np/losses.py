"""The training losses transformers attaches to MobileViT's outputs (forward only)."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def cross_entropy(logits: np.ndarray, labels: np.ndarray, ignore_index: int = -100) -> np.ndarray:
    """Mean negative log-likelihood of the true class over non-ignored targets.

    logits (N, K, ...) with the class axis second, as torch's CrossEntropyLoss; labels
    (N, ...) integer class ids. Targets equal to ignore_index count for nothing (NaN
    when every target is ignored, as in torch).
    """
    labels = np.asarray(labels)
    logp = log_softmax(logits, axis=1)  # (N, K, ...)
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    if ((safe < 0) | (safe >= logits.shape[1])).any():
        raise ValueError(f"labels must be in [0, {logits.shape[1]}) or equal ignore_index={ignore_index}")
    picked = np.take_along_axis(logp, safe[:, None].astype(np.int64), axis=1)[:, 0]  # (N, ...)
    return -(picked * keep).sum(dtype=logits.dtype) / logits.dtype.type(keep.sum())


def mse(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.mean(np.square(predictions - targets))


def bce_with_logits(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Binary cross-entropy per label, averaged; log(sigmoid) written to stay finite."""
    log_p = -np.logaddexp(0, -logits)  # log sigmoid(x)
    log_not_p = -np.logaddexp(0, logits)  # log (1 - sigmoid(x))
    return -np.mean(targets * log_p + (1 - targets) * log_not_p)
