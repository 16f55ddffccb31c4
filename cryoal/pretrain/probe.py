"""How good is an embedding? kNN and linear-probe accuracy on frozen features.

Both are the standard read-outs of self-supervised learning (the SimCLR and DINO papers'
evaluation): a k-nearest-neighbour vote in cosine similarity, and a multinomial logistic
regression on standardised features. :func:`neighbour_agreement` asks the reverse
question of a whole pool: how often a sample's nearest neighbours share an attribute
(class, orientation bin, defocus bin), which shows what the embedding groups by.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _unit(x: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return F.normalize(t, dim=1)


def _neighbours(query: torch.Tensor, ref: torch.Tensor, k: int, exclude_self: bool) -> torch.Tensor:
    """Indices ``(n_query, k)`` of the most cosine-similar rows of ``ref``, in blocks."""
    out = []
    for lo in range(0, query.shape[0], 1024):
        sim = query[lo : lo + 1024] @ ref.T
        if exclude_self:
            idx = torch.arange(lo, lo + sim.shape[0])
            sim[torch.arange(sim.shape[0]), idx] = -2.0
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


def _vote(neigh_labels: torch.Tensor, n_classes: int) -> np.ndarray:
    votes = torch.zeros(neigh_labels.shape[0], n_classes)
    votes.scatter_add_(1, neigh_labels, torch.ones_like(neigh_labels, dtype=torch.float32))
    return votes.argmax(dim=1).numpy()


def knn_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int = 10,
) -> float:
    """Accuracy of a ``k``-nearest-neighbour majority vote (cosine similarity).

    ``train_x`` ``(n, F)``, ``train_y`` ``(n,)`` class indices, ``test_x`` ``(m, F)``,
    ``test_y`` ``(m,)``. ``k`` is capped at ``n``; ties go to the lower class index.
    """
    k = max(1, min(int(k), len(train_y)))
    ytr = torch.as_tensor(np.asarray(train_y, dtype=np.int64))
    n_classes = int(max(ytr.max().item(), int(np.max(test_y)))) + 1
    idx = _neighbours(_unit(test_x), _unit(train_x), k, exclude_self=False)
    return float((_vote(ytr[idx], n_classes) == np.asarray(test_y)).mean())


def neighbour_agreement(x: np.ndarray, attribute: np.ndarray, k: int = 10) -> float:
    """Leave-one-out ``k``-NN accuracy of predicting ``attribute`` ``(n,)`` (integers) of
    each row of ``x`` ``(n, F)`` from its neighbours in the same set."""
    a = torch.as_tensor(np.asarray(attribute, dtype=np.int64))
    idx = _neighbours(_unit(x), _unit(x), k, exclude_self=True)
    return float((_vote(a[idx], int(a.max()) + 1) == a.numpy()).mean())


def linear_probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    weight_decay: float = 1e-3,
    max_iter: int = 300,
) -> float:
    """Accuracy of multinomial logistic regression on standardised features.

    Features are standardised with the training rows' mean and std; the weights are fit
    with L-BFGS to cross-entropy + ``weight_decay`` · ||W||². Deterministic (zero init).
    """
    xtr = torch.as_tensor(np.asarray(train_x, dtype=np.float32))
    xte = torch.as_tensor(np.asarray(test_x, dtype=np.float32))
    mu, sd = xtr.mean(0), xtr.std(0, unbiased=False) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    ytr = torch.as_tensor(np.asarray(train_y, dtype=np.int64))
    n_classes = int(max(ytr.max().item(), int(np.max(test_y)))) + 1
    w = torch.zeros(xtr.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + b, ytr) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (xte @ w + b).argmax(dim=1).numpy()
    return float((pred == np.asarray(test_y)).mean())
