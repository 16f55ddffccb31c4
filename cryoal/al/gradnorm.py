"""Per-sample gradient norms for gradient-norm active learning (methods.md §2).

Two surrogate losses stand in for the unknown label of an unlabeled sample ``x`` with
predicted probabilities ``p = softmax(f(x))``:

* ``entropy``: ``L = H(p) = -sum_c p_c log p_c`` with ``p`` **not** detached. This is what
  the released code computes for both of its schemes (with ``p`` attached,
  ``sum_c p_c CE(f(x), c)`` equals the entropy), so it reproduces the released ranking.
* ``expected``: ``sum_c p_c ||grad CE(f(x), c)||`` with the norm *inside* the expectation
  (``p`` as fixed weights). This is the genuinely different "expected" score; it costs one
  backward pass per class (each vectorised over the batch).

The score is a norm of the gradient over a parameter ``scope``: ``all`` trainable
parameters (the released code) or the ``last_layer`` (the final ``Linear``), combined as
``sum_of_tensor_norms`` (the sum of per-tensor L2 norms, the released code) or the
``global`` L2 norm over all of them.

The last layer has a closed form from one forward pass: for a final linear layer with
input ``h`` and logit gradient ``g = dL/dz``, ``dL/dW = g ⊗ h`` and ``dL/db = g``, so
``||dL/dW|| = ||g|| ||h||``. For ``all`` parameters the per-sample norms are exact and come
from one batched forward and one batched backward pass (per class for ``expected``):
hooks record each layer's input activations and output gradients, and every layer
computes its per-sample parameter-gradient norms from those (per layer, the cheaper of
materialising the per-sample gradient or the "ghost norm" Gram-matrix identity). This
is valid because in eval mode every sample's loss depends on that sample only
(BatchNorm uses its running statistics; dropout is off).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import EllipsisType
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

Surrogate = Literal["entropy", "expected"]
Scope = Literal["all", "last_layer"]
NormKind = Literal["sum_of_tensor_norms", "global"]

#: Bytes of scratch memory one layer may use for im2col patches (split the batch beyond).
PATCH_BUDGET_BYTES = 256 * 2**20

_EPS = 1e-12


def _check_options(surrogate: str, norm: str) -> None:
    if surrogate not in ("entropy", "expected"):
        raise ValueError(f"unknown gradnorm surrogate {surrogate!r}; use 'entropy' or 'expected'")
    if norm not in ("sum_of_tensor_norms", "global"):
        raise ValueError(f"unknown gradnorm norm {norm!r}; use 'sum_of_tensor_norms' or 'global'")


def combine_norms(sq_norms: dict[str, torch.Tensor], norm: NormKind) -> torch.Tensor:
    """Combine per-tensor squared norms ``{name: (B,)}`` into one ``(B,)`` norm.

    ``sum_of_tensor_norms``: ``sum_t sqrt(sq_t)``; ``global``: ``sqrt(sum_t sq_t)``.
    """
    if not sq_norms:
        raise ValueError("no trainable parameters to take a gradient norm over")
    stack = torch.stack([v.to(torch.float64) for v in sq_norms.values()])
    if norm == "sum_of_tensor_norms":
        return stack.clamp_min(0).sqrt().sum(0)
    if norm == "global":
        return stack.sum(0).clamp_min(0).sqrt()
    raise ValueError(f"unknown gradnorm norm {norm!r}; use 'sum_of_tensor_norms' or 'global'")


# --------------------------------------------------------------------------- closed form
def entropy_logit_grad(probs: np.ndarray) -> np.ndarray:
    """``dH/dz`` for ``H = -sum p log p``, ``p = softmax(z)``: ``-p (log p + H)``. Shape (N, C)."""
    p = np.asarray(probs, np.float64)
    logp = np.log(np.clip(p, _EPS, None))
    h = -(p * logp).sum(axis=1, keepdims=True)
    return -p * (logp + h)


def last_layer_gradnorm(
    probs: np.ndarray,
    features: np.ndarray,
    *,
    surrogate: Surrogate = "entropy",
    norm: NormKind = "sum_of_tensor_norms",
    bias: bool = True,
) -> np.ndarray:
    """Closed-form gradient norms over the final ``Linear(F, C)`` layer.

    Parameters
    ----------
    probs
        ``(N, C)`` softmax probabilities of the model.
    features
        ``(N, F)`` input of the final linear layer (penultimate features).
    surrogate
        ``"entropy"`` (logit gradient ``-p (log p + H)``) or ``"expected"``
        (``sum_c p_c ||(p - e_c) ⊗ [h, 1]||``).
    norm
        ``"sum_of_tensor_norms"``: ``||dW|| + ||db||``; ``"global"``: ``sqrt(||dW||^2 + ||db||^2)``.
    bias
        Whether the final layer has a bias.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64 scores.
    """
    _check_options(surrogate, norm)
    p = np.asarray(probs, np.float64)
    h = np.asarray(features, np.float64)
    if p.ndim != 2 or h.ndim != 2 or p.shape[0] != h.shape[0]:
        raise ValueError(
            f"probs (N, C) and features (N, F) must share N; got {p.shape} and {h.shape}"
        )
    hn = np.linalg.norm(h, axis=1)
    # ||g ⊗ h|| + ||g|| = ||g|| (||h|| + 1); global: ||g|| sqrt(||h||^2 + 1)
    factor = (hn + float(bias)) if norm == "sum_of_tensor_norms" else np.sqrt(hn**2 + float(bias))
    if surrogate == "entropy":
        gnorm = np.linalg.norm(entropy_logit_grad(p), axis=1)
    else:
        # ||p - e_c||^2 = ||p||^2 - 2 p_c + 1, for every class c at once
        psq = (p * p).sum(axis=1, keepdims=True)
        gnorm = (p * np.sqrt(np.clip(psq - 2.0 * p + 1.0, 0.0, None))).sum(axis=1)
    return gnorm * factor


# --------------------------------------------------------------------------- per layer
def _conv_padding(m: nn.modules.conv._ConvNd, nd: int) -> list[tuple[int, int]]:
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return [(0, 0)] * nd
        pads = []
        for d in range(nd):
            total = m.dilation[d] * (m.kernel_size[d] - 1)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(int(p), int(p)) for p in m.padding]


def _unfold(
    x: torch.Tensor, m: nn.modules.conv._ConvNd, groups: int, pad_mode: str = "zeros"
) -> torch.Tensor:
    """im2col for N-d convolutions: ``(B, Cin, *L)`` -> ``(B, groups, Cin/groups * K, P)``."""
    nd = x.dim() - 2
    pads = _conv_padding(m, nd)
    flat_pad: list[int] = []
    for lo, hi in reversed(pads):
        flat_pad += [lo, hi]
    if any(flat_pad):
        mode = "constant" if pad_mode == "zeros" else pad_mode
        x = F.pad(x, flat_pad, mode=mode)
    for d in range(nd):
        extent = m.dilation[d] * (m.kernel_size[d] - 1) + 1
        x = x.unfold(2 + d, extent, m.stride[d])
    if any(dl > 1 for dl in m.dilation):
        sl: tuple[EllipsisType | slice, ...] = (
            Ellipsis,
            *[slice(None, None, dl) for dl in m.dilation],
        )
        x = x[sl]
    b, c = x.shape[:2]
    out_shape = x.shape[2 : 2 + nd]
    perm = [0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd)]
    x = x.permute(perm)  # (B, C, k..., O...)
    p = int(np.prod(out_shape))
    return x.reshape(b, groups, -1, p)


def _bilinear_sq_norms(
    left: torch.Tensor, right: torch.Tensor, method: str | None = None
) -> torch.Tensor:
    """``||sum_p left[:, :, :, p] ⊗ right[:, :, :, p]||^2`` per sample.

    ``left`` (B, G, A, P), ``right`` (B, G, R, P): the per-sample gradient is ``left @
    right^T`` per group. Materialised costs ``P*A*R``; the ghost identity
    ``sum_pq (l_p.l_q)(r_p.r_q)`` costs ``P^2 (A + R)``; the cheaper is used.
    """
    a, r, p = left.shape[2], right.shape[2], left.shape[3]
    if method is None:
        method = "ghost" if p * (a + r) < a * r else "materialise"
    if method == "ghost":
        gl = left.transpose(-1, -2) @ left
        gr = right.transpose(-1, -2) @ right
        return (gl * gr).sum(dim=(1, 2, 3))
    w = left @ right.transpose(-1, -2)
    return (w * w).sum(dim=(1, 2, 3))


def _chunks(b: int, bytes_per_sample: int) -> list[slice]:
    step = max(1, PATCH_BUDGET_BYTES // max(bytes_per_sample, 1))
    return [slice(i, min(i + step, b)) for i in range(0, b, step)]


def _grouped_weight_grad_sq_norms(
    m: nn.modules.conv._ConvNd, a: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    """Per-sample weight-gradient norms from one grouped weight-gradient kernel call.

    The batch is folded into the channel axis (``(1, B*Cin, ...)``) and treated as ``B``
    groups, so the backend's own convolution weight-gradient kernel returns the ``B``
    per-sample gradients ``(B*Cout, Cin, k...)`` in one call.
    """
    b = a.shape[0]
    nd = a.dim() - 2
    transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
    pads = _conv_padding(m, nd)
    if not transposed and (m.padding_mode != "zeros" or any(lo != hi for lo, hi in pads)):
        flat: list[int] = []
        for lo, hi in reversed(pads):
            flat += [lo, hi]
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        a = F.pad(a, flat, mode=mode)
        padding = [0] * nd
    else:
        padding = [lo for lo, _ in pads]
    weight = m.weight.detach().repeat(b, *([1] * (m.weight.dim() - 1)))
    output_padding = list(m.output_padding) if transposed else [0] * nd
    grad_w = torch.ops.aten.convolution_backward(
        g.reshape(1, -1, *g.shape[2:]),
        a.reshape(1, -1, *a.shape[2:]),
        weight,
        None,
        list(m.stride),
        padding,
        list(m.dilation),
        transposed,
        output_padding,
        b * m.groups,
        [False, True, False],
    )[1]
    return grad_w.reshape(b, -1).pow(2).sum(1)


def _conv_sq_norms(
    m: nn.modules.conv._ConvNd, a: torch.Tensor, g: torch.Tensor, method: str | None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    b = a.shape[0]
    if m.bias is not None and m.bias.requires_grad:
        gb = g.sum(dim=tuple(range(2, g.dim())))
        out["bias"] = (gb * gb).sum(1)
    if not m.weight.requires_grad:
        return out
    transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
    if transposed and m.padding_mode != "zeros":
        raise ValueError(
            f"{type(m).__name__} with padding_mode={m.padding_mode!r} is not supported"
        )
    # conv: dW = g x unfold(a); transposed conv (the adjoint): dW = a x unfold(g)
    src, other = (g, a) if transposed else (a, g)
    groups = m.groups
    k = int(np.prod(m.kernel_size))
    p = int(np.prod(other.shape[2:]))
    rows = other.shape[1] // groups
    cols = src.shape[1] // groups * k
    if method is None:
        method = "ghost" if p * (rows + cols) < rows * cols else "materialise"
    if method == "materialise":
        out["weight"] = _grouped_weight_grad_sq_norms(m, a, g)
        return out
    if method != "ghost":
        raise ValueError(f"unknown per-sample norm method {method!r}; use 'ghost' or 'materialise'")
    per_sample = src.shape[1] * k * p * src.element_size()
    parts = []
    for sl in _chunks(b, per_sample):
        patches = _unfold(src[sl], m, groups, m.padding_mode)
        oth = other[sl].reshape(other[sl].shape[0], groups, rows, -1)
        parts.append(_bilinear_sq_norms(oth, patches, "ghost"))
    out["weight"] = torch.cat(parts)
    return out


def _linear_sq_norms(
    m: nn.Linear, a: torch.Tensor, g: torch.Tensor, method: str | None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    b = a.shape[0]
    a3 = a.reshape(b, -1, a.shape[-1])
    g3 = g.reshape(b, -1, g.shape[-1])
    if m.bias is not None and m.bias.requires_grad:
        gb = g3.sum(1)
        out["bias"] = (gb * gb).sum(1)
    if m.weight.requires_grad:
        if a3.shape[1] == 1:
            out["weight"] = (g3[:, 0] ** 2).sum(1) * (a3[:, 0] ** 2).sum(1)
        else:
            left = g3.transpose(1, 2).unsqueeze(1)  # (B, 1, out, T)
            right = a3.transpose(1, 2).unsqueeze(1)  # (B, 1, in, T)
            out["weight"] = _bilinear_sq_norms(left, right, method)
    return out


def _affine_sq_norms(
    m: nn.Module, xhat: torch.Tensor, g: torch.Tensor, param_dims: int
) -> dict[str, torch.Tensor]:
    """Per-sample norms for ``y = xhat * w + b`` with ``w`` over dims ``1..param_dims``.

    ``param_dims`` = 1 for per-channel parameters (BatchNorm, GroupNorm, InstanceNorm);
    for LayerNorm the trailing ``normalized_shape`` dims are moved first by the caller.
    """
    out: dict[str, torch.Tensor] = {}
    reduce = tuple(range(1 + param_dims, g.dim()))
    if getattr(m, "weight", None) is not None and m.weight.requires_grad:
        gw = (g * xhat).sum(dim=reduce) if reduce else g * xhat
        out["weight"] = gw.reshape(g.shape[0], -1).pow(2).sum(1)
    if getattr(m, "bias", None) is not None and m.bias.requires_grad:
        gb = g.sum(dim=reduce) if reduce else g
        out["bias"] = gb.reshape(g.shape[0], -1).pow(2).sum(1)
    return out


def _channel_view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape(1, -1, *([1] * (ndim - 2)))


def _batchnorm_sq_norms(
    m: nn.modules.batchnorm._BatchNorm, a: torch.Tensor, g: torch.Tensor, method: str | None
) -> dict[str, torch.Tensor]:
    if m.training or m.running_mean is None or m.running_var is None:
        raise ValueError(
            f"{type(m).__name__} normalises with batch statistics (training mode or no running "
            "statistics), which couples the samples of a batch; call model.eval() first"
        )
    mean = _channel_view(m.running_mean, a.dim())
    var = _channel_view(m.running_var, a.dim())
    xhat = (a - mean) / torch.sqrt(var + m.eps)
    return _affine_sq_norms(m, xhat, g, 1)


def _groupnorm_sq_norms(
    m: nn.GroupNorm, a: torch.Tensor, g: torch.Tensor, method: str | None
) -> dict[str, torch.Tensor]:
    xhat = F.group_norm(a, m.num_groups, eps=m.eps)
    return _affine_sq_norms(m, xhat, g, 1)


def _instancenorm_sq_norms(
    m: nn.modules.instancenorm._InstanceNorm, a: torch.Tensor, g: torch.Tensor, method: str | None
) -> dict[str, torch.Tensor]:
    use_running = m.track_running_stats and not m.training and m.running_mean is not None
    xhat = F.instance_norm(
        a,
        m.running_mean if use_running else None,
        m.running_var if use_running else None,
        use_input_stats=not use_running,
        eps=m.eps,
    )
    return _affine_sq_norms(m, xhat, g, 1)


def _layernorm_sq_norms(
    m: nn.LayerNorm, a: torch.Tensor, g: torch.Tensor, method: str | None
) -> dict[str, torch.Tensor]:
    xhat = F.layer_norm(a, m.normalized_shape, eps=m.eps)
    nd = len(m.normalized_shape)
    b = a.shape[0]
    # (B, *rest, *normalized) -> (B, *normalized, rest-flattened)
    xh = xhat.reshape(b, -1, *m.normalized_shape).movedim(1, -1)
    gg = g.reshape(b, -1, *m.normalized_shape).movedim(1, -1)
    return _affine_sq_norms(m, xh, gg, nd)


def _prelu_sq_norms(
    m: nn.PReLU, a: torch.Tensor, g: torch.Tensor, method: str | None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if m.weight.requires_grad:
        contrib = g * a.clamp_max(0)
        if m.num_parameters == 1:
            gw = contrib.reshape(a.shape[0], -1).sum(1, keepdim=True)
        else:
            gw = contrib.transpose(0, 1).reshape(a.shape[1], a.shape[0], -1).sum(2).T
        out["weight"] = (gw * gw).sum(1)
    return out


_HANDLERS: list[tuple[type, Callable[..., dict[str, torch.Tensor]]]] = [
    (nn.modules.conv._ConvNd, _conv_sq_norms),
    (nn.Linear, _linear_sq_norms),
    (nn.modules.batchnorm._BatchNorm, _batchnorm_sq_norms),
    (nn.GroupNorm, _groupnorm_sq_norms),
    (nn.modules.instancenorm._InstanceNorm, _instancenorm_sq_norms),
    (nn.LayerNorm, _layernorm_sq_norms),
    (nn.PReLU, _prelu_sq_norms),
]


def _handler(m: nn.Module) -> Callable[..., dict[str, torch.Tensor]] | None:
    for kind, fn in _HANDLERS:
        if isinstance(m, kind):
            return fn
    return None


class _Recorder:
    """Forward hooks that keep each layer's input and capture its output gradient."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: dict[str, nn.Module] = {}
        for name, mod in model.named_modules():
            own = [p for p in mod.parameters(recurse=False) if p.requires_grad]
            if not own:
                continue
            if _handler(mod) is None:
                raise ValueError(
                    f"per-sample gradient norms: layer {name!r} ({type(mod).__name__}) has "
                    "trainable parameters of a kind cryoal cannot handle exactly; use "
                    "scope='last_layer' or freeze it (requires_grad=False)"
                )
            self.layers[name] = mod
        self.inputs: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> _Recorder:
        for name, mod in self.layers.items():
            self._handles.append(mod.register_forward_hook(self._forward_hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _forward_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if name in self.inputs:
                raise ValueError(
                    f"layer {name!r} is called more than once per forward pass; exact per-sample "
                    "gradient norms need each parameterised layer used once (use scope='last_layer')"
                )
            self.inputs[name] = inputs[0].detach()
            if output.requires_grad:
                # a hook registered before any in-place change sees the gradient of this value
                output.register_hook(self._grad_hook(name))

        return hook

    def _grad_hook(self, name: str) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            self.grads[name] = grad.detach()

        return hook

    def sq_norms(self, method: str | None = None) -> dict[str, torch.Tensor]:
        """Per-sample squared norms ``{param name: (B,)}`` from the last backward pass."""
        out: dict[str, torch.Tensor] = {}
        for name, mod in self.layers.items():
            if name not in self.inputs:
                continue  # layer not used in this forward pass: zero gradient
            a = self.inputs[name]
            g = self.grads.get(name)
            b = a.shape[0]
            fn = _handler(mod)
            assert fn is not None
            if g is None:
                parts = {
                    pn: torch.zeros(b, dtype=torch.float64)
                    for pn, p in mod.named_parameters(recurse=False)
                    if p.requires_grad
                }
            else:
                parts = fn(mod, a, g, method)
            for pn, v in parts.items():
                out[f"{name}.{pn}" if name else pn] = v.to(torch.float64)
        self.grads.clear()
        return out


def per_sample_grad_sq_norms(
    model: nn.Module,
    x: torch.Tensor,
    surrogate: Surrogate = "entropy",
    *,
    method: Literal["ghost", "materialise"] | None = None,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Exact per-sample squared gradient norms of every trainable tensor.

    One batched forward pass, then one batched backward pass for ``entropy`` or ``C``
    backward passes (one per class ``c``, loss ``CE(f(x), c)``) for ``expected``.

    Parameters
    ----------
    model
        A network in **eval** mode whose output is logits ``(B, C)`` or ``(B, C, *spatial)``.
    x
        ``(B, 1, D, H, W)`` input batch.
    surrogate
        ``"entropy"`` or ``"expected"`` (classification only).
    method
        Force ``"ghost"`` or ``"materialise"`` for every layer (testing); default per layer.

    Returns
    -------
    sq_norms, probs
        A list with one ``{param name: (B,) float64}`` dict (``entropy``) or ``C`` dicts
        (``expected``, one per class), and the ``(B, C[, ...])`` probabilities (detached).
    """
    if model.training:
        raise ValueError("per-sample gradient norms need the model in eval mode; call model.eval()")
    x = x.detach().requires_grad_(True)
    rec = _Recorder(model)
    results: list[dict[str, torch.Tensor]] = []
    with torch.enable_grad(), rec:
        logits = model(x)
        if logits.dim() < 2:
            raise ValueError(
                f"model output must be (B, C, ...) logits; got shape {tuple(logits.shape)}"
            )
        logp = torch.log_softmax(logits, dim=1)
        probs = logp.exp()
        if surrogate == "entropy":
            ent = -(probs * logp).sum(1)
            per_sample = ent.reshape(ent.shape[0], -1).mean(1)  # voxel mean for segmentation
            torch.autograd.grad(per_sample.sum(), x)
            results.append(rec.sq_norms(method))
        elif surrogate == "expected":
            if logits.dim() != 2:
                raise ValueError(
                    "expected-gradnorm is defined for classification (B, C) logits only"
                )
            for c in range(logits.shape[1]):
                loss = -logp[:, c].sum()
                torch.autograd.grad(loss, x, retain_graph=c + 1 < logits.shape[1])
                results.append(rec.sq_norms(method))
        else:
            raise ValueError(
                f"unknown gradnorm surrogate {surrogate!r}; use 'entropy' or 'expected'"
            )
    return results, probs.detach()


def gradnorm_scores(
    model: nn.Module,
    x: torch.Tensor,
    *,
    surrogate: Surrogate = "entropy",
    norm: NormKind = "sum_of_tensor_norms",
    scope: Scope = "all",
    method: Literal["ghost", "materialise"] | None = None,
) -> np.ndarray:
    """Gradient-norm scores of a batch, higher = more informative.

    Parameters
    ----------
    model
        Classifier in eval mode. For ``scope="last_layer"`` it must expose
        ``forward_features(x) -> (B, F)`` and ``head: nn.Linear`` (``cryoal.models.Classifier``).
    x
        ``(B, 1, D, H, W)`` batch.
    surrogate, norm, scope
        See the module docstring.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` float64.
    """
    _check_options(surrogate, norm)
    if scope == "last_layer":
        head = getattr(model, "head", None)
        forward_features = getattr(model, "forward_features", None)
        if not isinstance(head, nn.Linear) or not callable(forward_features):
            raise ValueError(
                "scope='last_layer' needs a classifier with forward_features() and a Linear head"
            )
        with torch.no_grad():
            h = forward_features(x)
            probs = torch.softmax(head(h), dim=1)
        return last_layer_gradnorm(
            probs.double().numpy(),
            h.double().numpy(),
            surrogate=surrogate,
            norm=norm,
            bias=head.bias is not None,
        )
    if scope != "all":
        raise ValueError(f"unknown gradnorm scope {scope!r}; use 'all' or 'last_layer'")
    sq, probs = per_sample_grad_sq_norms(model, x, surrogate, method=method)
    if surrogate == "entropy":
        return combine_norms(sq[0], norm).numpy()
    per_class = torch.stack([combine_norms(s, norm) for s in sq], dim=1)  # (B, C)
    return (probs.double() * per_class).sum(1).numpy()
