"""Losses: hard and soft cross-entropy, label smoothing, and Hinton distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k target_k * log_softmax(logits)_k`` (target rows sum to 1)."""
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def smoothed_targets(labels: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    """One-hot targets with ``eps`` spread uniformly: ``(1 - eps) * onehot + eps / K``."""
    onehot = F.one_hot(labels, num_classes).float()
    return onehot * (1.0 - eps) + eps / num_classes


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """CE on soft labels when given (mixed rows), else on (smoothed) hard labels. Unlabelled rows (label -1, an
    all-zero soft label) are left out of the mean; a batch without a labelled row gives 0."""
    keep = labels >= 0
    if not bool(keep.all()):
        if not bool(keep.any()):
            return logits.sum() * 0.0
        logits, labels, soft = logits[keep], labels[keep], None if soft is None else soft[keep]
    if soft is not None:
        return soft_cross_entropy(logits, soft)
    return soft_cross_entropy(logits, smoothed_targets(labels, logits.shape[1], label_smoothing))


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 4.0,
    lambda_hard: float = 0.1,
    lambda_soft: float = 0.9,
    soft: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinton et al.: ``lambda_hard * CE(hard) + lambda_soft * T^2 * CE(softmax(t/T), log_softmax(s/T))``.

    The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T changes. Unlabelled rows
    (label -1: a transfer set) get the soft term only; the hard term is the mean over the labelled rows.
    """
    t = temperature
    hard = classification_loss(student_logits, labels, soft)
    soft_t = F.softmax(teacher_logits / t, dim=1)
    soft_term = soft_cross_entropy(student_logits / t, soft_t)
    return lambda_hard * hard + lambda_soft * (t * t) * soft_term
