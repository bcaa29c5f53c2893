"""Exact per-sample squared gradient norms from one batched forward and backward, layer by layer.

For a network whose samples are independent (BatchNorm in eval mode) and a per-sample scalar s(x_n), the gradient
of Σ_n s(x_n) at a layer's output, taken at sample n, is exactly ∂s(x_n)/∂(output_n). Each layer's per-sample
parameter gradient is then a function of its input a_n (saved by a forward hook) and that output gradient δ_n
(caught by a tensor hook during the one backward), so ‖∇_θ s(x_n)‖² = Σ_layers Σ_params ‖∂s(x_n)/∂θ‖² needs no
per-sample backward. The backward is taken with respect to the input pixels only, so autograd never forms the
batch-summed weight gradients. Formulas, with T the output positions of a layer (H_out·W_out, or the tokens of a
Linear layer) and A_n the unfolded input (the im2col columns ``F.unfold`` gives, one per output position):

* **Convolution** (``torch.nn.Conv2d``, timm's ``Conv2dSame`` whose SAME padding is redone here with timm's own
  ``pad_same``), groups g: the per-sample weight gradient of group j is ``G_nj = δ_nj A_njᵀ`` (C_out/g × C_in/g·k²,
  summed over t). For g = 1 its squared Frobenius norm is taken either by materialising G_n (C_out·C_in·k²·T
  multiply-adds per sample) or as the "ghost norm" ``Σ_{t,t'} (a_t·a_t')(δ_t·δ_t')`` from the two T×T Gram
  matrices (T²·(C_in·k² + C_out)), whichever costs fewer operations for the layer's shapes (early layers: many
  positions, few channels → materialise; late ones: few positions → Gram). Materialised G_n come from one batched
  matmul for 1×1 kernels, else, like depthwise and other grouped convolutions, from one weight-gradient
  convolution over the whole batch with one group per (sample, group) (``torch.nn.grad.conv2d_weight``, ~10×
  faster on CPU than unfolding the input for depthwise layers). Bias: ``‖Σ_t δ_t‖²``.
* **BatchNorm** in eval mode (``torch.nn.BatchNorm2d`` and timm's ``BatchNormAct2d``, whose activation and
  dropout run inside the module: δ is taken at the affine output before the activation, from a tensor hook
  registered on the activation's input): with x̂ = (x − running_mean)/√(running_var + ε), the per-sample
  gradients are ``∂γ_c = Σ_t δ_ct x̂_ct`` and ``∂β_c = Σ_t δ_ct``.
* **Linear**: with one input vector per sample, ``‖∂W‖² = ‖a‖²·‖δ‖²`` and ``‖∂b‖² = ‖δ‖²``; with tokens it is a
  1×1 convolution over T positions (weight sharing), as above.

Each layer's per-sample norm is summed in float32, then accumulated over layers in float64, as the ``torch.func``
path of :mod:`lead_hub.ntk` does per parameter tensor. A network with a trainable parameter in a module of any
other type (or a supported module called twice in one pass, or an input modified in place before its gradient
arrives) raises :class:`UnsupportedNetwork`, and the caller falls back to ``torch.func``. Modules without
parameters (activations, pooling, padding, residual adds, dropout in eval mode) are assumed to act on each sample
separately, which holds for eval-mode vision networks; BatchNorm that would use batch statistics (training mode, no
running statistics) is refused for that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from timm.layers import BatchNormAct2d, Conv2dSame
from timm.layers.padding import pad_same
from torch.nn.grad import conv2d_weight

#: Largest intermediate (elements) one layer's formula builds at once; the batch is split to stay below it.
ELEMENT_BUDGET = 1 << 24
#: Memory format of the 4-D weights during a pass (restored after): channels_last runs the zoo's CNNs 10-25%
#: faster on CPU, forward, backward and formulas together (``benchmarks/bench_ntk.py speed``).
PASS_MEMORY_FORMAT = torch.channels_last

_CONVOLUTIONS = (torch.nn.Conv2d, Conv2dSame)
_BATCH_NORMS = (torch.nn.BatchNorm2d, BatchNormAct2d)
_SUPPORTED = (*_CONVOLUTIONS, *_BATCH_NORMS, torch.nn.Linear)


class UnsupportedNetwork(RuntimeError):
    """The layer-wise formulas do not cover this network (the message says which module and why)."""


class LayerwiseSqNorms:
    """Per-sample ‖∇_θ s(x_n)‖² over the named parameters of ``network``, from one batched forward and backward.

    Parameters
    ----------
    network : torch.nn.Module
        The network, in eval mode; its parameters' values are never changed (during a pass its 4-D weights are
        laid out as :data:`PASS_MEMORY_FORMAT`, restored after).
    parameter_names : iterable of str
        Names (as in ``network.named_parameters()``) of the parameters whose gradients enter the norm; each must
        belong to a supported module (convolution, BatchNorm, Linear; see the module docstring).

    Raises
    ------
    UnsupportedNetwork
        A named parameter belongs to a module of another type, or a BatchNorm would use batch statistics.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
    ...                           torch.nn.Flatten()).eval()
    >>> norms = LayerwiseSqNorms(net, [name for name, _ in net.named_parameters()])
    >>> norms(lambda pixels: net(pixels).sum(dim=1), torch.randn(5, 3, 8, 8)).shape
    torch.Size([5])
    """

    def __init__(self, network: torch.nn.Module, parameter_names: Iterable[str]):
        self.network = network
        wanted = set(parameter_names)
        self.layers: dict[torch.nn.Module, tuple[str, ...]] = {}
        for module_name, module in network.named_modules():
            names = tuple(name for name, _ in module.named_parameters(recurse=False)
                          if _joined(module_name, name) in wanted)
            if names:
                _check_supported(module_name, module)
                self.layers[module] = names
        found = {_joined(module_name, name) for module_name, module in network.named_modules()
                 for name in self.layers.get(module, ())}
        if wanted - found:
            raise UnsupportedNetwork(f"parameters not found in the network: {sorted(wanted - found)[:3]}")

    def __call__(self, summed_scalar: Callable[[torch.Tensor], torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
        """Per-sample squared norms (float64, one per row of ``pixels``) of the gradient of ``summed_scalar``.

        ``summed_scalar(pixels)`` must return one scalar per sample, s(x_n) (shape (B,)), computed by running
        ``network`` on ``pixels``."""
        totals = torch.zeros(len(pixels), dtype=torch.float64, device=pixels.device)
        pending: dict[torch.nn.Module, int] = {}

        def add(module, values):
            nonlocal totals
            totals = totals + values.double()
            pending[module] -= 1

        with self._hooks(add, pending), _memory_format(self.network, PASS_MEMORY_FORMAT):
            pixels = pixels.detach().requires_grad_(True)
            scalars = summed_scalar(pixels)
            torch.autograd.grad(scalars.sum(), pixels)
        missing = [type(module).__name__ for module, count in pending.items() if count]
        if missing:
            raise UnsupportedNetwork(f"no output gradient reached {len(missing)} layers (e.g. {missing[0]})")
        return totals

    @contextmanager
    def _hooks(self, add, pending):
        handles = []
        try:
            for module, names in self.layers.items():
                if isinstance(module, _BATCH_NORMS):
                    handles.extend(_batch_norm_rule(module, names, add, pending))
                else:
                    formula = _convolution_sq_norms if isinstance(module, _CONVOLUTIONS) else _linear_sq_norms
                    handles.extend(_output_rule(module, names, add, pending, formula))
            yield
        finally:
            for handle in handles:
                handle.remove()


@contextmanager
def _memory_format(network: torch.nn.Module, memory_format: torch.memory_format):
    """The network's 4-D parameters in ``memory_format`` (convolutions then compute in it), restored after."""
    originals = [(parameter, parameter.data) for parameter in network.parameters() if parameter.dim() == 4]
    for parameter, data in originals:
        parameter.data = data.contiguous(memory_format=memory_format)
    try:
        yield
    finally:
        for parameter, data in originals:
            parameter.data = data


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_supported(name: str, module: torch.nn.Module) -> None:
    if type(module) not in _SUPPORTED:  # exact types: a subclass may change the forward (weight standardisation)
        raise UnsupportedNetwork(f"module {name or '(root)'} of type {type(module).__name__} has trainable "
                                 "parameters and no per-layer formula")
    if isinstance(module, torch.nn.Conv2d) and module.padding_mode != "zeros":
        raise UnsupportedNetwork(f"convolution {name} pads with {module.padding_mode!r}, not zeros")
    if isinstance(module, _BATCH_NORMS):
        if module.training or module.running_mean is None or module.running_var is None:
            raise UnsupportedNetwork(f"BatchNorm {name} would use batch statistics (training mode or no running "
                                     "statistics), so samples are not independent")
        if isinstance(module, BatchNormAct2d) and type(module.drop) not in (torch.nn.Identity, torch.nn.Dropout):
            raise UnsupportedNetwork(f"BatchNormAct2d {name} has a {type(module.drop).__name__} drop layer")


def _capture(module, pending, inputs):
    """Record that ``module`` ran once in this pass; a second call means weight sharing across calls."""
    if pending.get(module):
        raise UnsupportedNetwork(f"{type(module).__name__} is called more than once per forward pass")
    pending[module] = 1
    return inputs, inputs._version


def _checked(module, saved):
    tensor, version = saved
    if tensor._version != version:
        raise UnsupportedNetwork(f"the input of a {type(module).__name__} was modified in place before its "
                                 "gradient arrived")
    return tensor


def _output_rule(module, names, add, pending, formula):
    """Hooks for a layer whose δ is the gradient at its output: ``formula(module, names, input, δ)``."""
    def forward_hook(_, inputs, output):
        saved = _capture(module, pending, inputs[0])
        output.register_hook(lambda delta: add(module, formula(module, names, _checked(module, saved), delta)))
    return [module.register_forward_hook(forward_hook)]


def _batch_norm_rule(module, names, add, pending):
    """δ at the affine output: the module's output for BatchNorm2d, the activation's input for BatchNormAct2d
    (its activation may run in place; a tensor hook registered before that sees the gradient of the value it was
    registered on)."""
    saved = {}

    def pre_hook(_, inputs):
        saved["input"] = _capture(module, pending, inputs[0])

    def on_affine_output(affine_output):
        affine_output.register_hook(lambda delta: add(module, _batch_norm_sq_norms(
            module, names, _checked(module, saved.pop("input")), delta)))

    handles = [module.register_forward_pre_hook(pre_hook)]
    if isinstance(module, BatchNormAct2d):
        handles.append(module.act.register_forward_pre_hook(lambda _, inputs: on_affine_output(inputs[0])))
    else:
        handles.append(module.register_forward_hook(lambda _, inputs, output: on_affine_output(output)))
    return handles


def _convolution_sq_norms(module, names, inputs, delta):
    """Per-sample Σ over ``names`` (weight, bias) of ‖∂s/∂param‖² for a convolution (module docstring)."""
    total = torch.zeros(len(delta), dtype=torch.float32, device=delta.device)
    if "bias" in names:
        total += delta.sum(dim=(2, 3)).square().sum(dim=1)
    if "weight" not in names:
        return total
    padding = module.padding
    if isinstance(module, Conv2dSame):
        inputs, padding = pad_same(inputs, module.kernel_size, module.stride, module.dilation), (0, 0)
    elif isinstance(padding, str):  # 'same' / 'valid': the amounts nn.Conv2d itself pads by
        inputs, padding = F.pad(inputs, module._reversed_padding_repeated_twice), (0, 0)
    batch, groups = len(delta), module.groups
    positions = delta.shape[2] * delta.shape[3]
    per_group_in = module.weight[0].numel()
    if groups == 1 and _ghost_is_cheaper(module.out_channels, per_group_in, positions):
        return total + _ghost_sq_norms(delta.reshape(batch, module.out_channels, positions),
                                       _columns(module, inputs, padding, positions))
    if groups == 1 and module.kernel_size == (1, 1):
        return total + _materialised_sq_norms(delta.reshape(batch, module.out_channels, positions),
                                              _columns(module, inputs, padding, positions))
    # Per-sample weight gradients of all samples at once: a convolution with one group per (sample, group).
    step = max(1, ELEMENT_BUDGET // max(module.weight.numel(), inputs[0].numel()))
    parts = []
    for start in range(0, batch, step):
        x, d = inputs[start:start + step], delta[start:start + step]
        shape = (len(x) * module.out_channels, *module.weight.shape[1:])
        gradients = conv2d_weight(x.reshape(1, -1, *x.shape[2:]), shape, d.reshape(1, -1, *d.shape[2:]),
                                  module.stride, padding, module.dilation, len(x) * groups)
        parts.append(gradients.reshape(len(x), -1).square().sum(dim=1))
    return total + torch.cat(parts)


def _columns(module, inputs, padding, positions):
    """The im2col matrix (B, C_in·k², T) of a convolution with one group (a strided view for 1×1 kernels)."""
    if module.kernel_size == (1, 1) and tuple(padding) == (0, 0) and module.dilation == (1, 1):
        inputs = inputs[:, :, ::module.stride[0], ::module.stride[1]]
        return inputs.reshape(len(inputs), -1, positions)
    return F.unfold(inputs, module.kernel_size, module.dilation, padding, module.stride)


def _linear_sq_norms(module, names, inputs, delta):
    """Per-sample Σ over ``names`` of ‖∂s/∂param‖² for a Linear layer (module docstring)."""
    batch = len(delta)
    delta, inputs = delta.reshape(batch, -1, delta.shape[-1]), inputs.reshape(batch, -1, inputs.shape[-1])
    total = torch.zeros(batch, dtype=torch.float32, device=delta.device)
    if "bias" in names:
        total += delta.sum(dim=1).square().sum(dim=1)
    if "weight" in names:
        if delta.shape[1] == 1:  # one vector per sample: ‖δ aᵀ‖² = ‖δ‖²‖a‖²
            total += delta.square().sum(dim=(1, 2)) * inputs.square().sum(dim=(1, 2))
        else:
            delta, inputs = delta.transpose(1, 2), inputs.transpose(1, 2)
            ghost = _ghost_is_cheaper(delta.shape[1], inputs.shape[1], delta.shape[2])
            total += (_ghost_sq_norms if ghost else _materialised_sq_norms)(delta, inputs)
    return total


def _batch_norm_sq_norms(module, names, inputs, delta):
    """Per-sample Σ over ``names`` (weight γ, bias β) of ‖∂s/∂param‖² for an eval-mode BatchNorm."""
    total = torch.zeros(len(delta), dtype=torch.float32, device=delta.device)
    if "bias" in names:
        total += delta.sum(dim=(2, 3)).square().sum(dim=1)
    if "weight" in names:
        shape = (1, -1, 1, 1)
        normalized = (inputs - module.running_mean.reshape(shape)) * torch.rsqrt(
            module.running_var.reshape(shape) + module.eps)
        total += (delta * normalized).sum(dim=(2, 3)).square().sum(dim=1)
    return total


def _ghost_is_cheaper(outputs: int, inputs: int, positions: int) -> bool:
    """Multiply-adds per sample: Gram matrices T²·(I + O) against materialising O·I·T."""
    return positions * positions * (inputs + outputs) < outputs * inputs * positions


def _ghost_sq_norms(delta: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Per-sample ‖δ Aᵀ‖²_F = Σ_{t,t'} (AᵀA)_{tt'} (δᵀδ)_{tt'} for δ (B, O, T) and A (B, I, T), in float32."""
    step = max(1, ELEMENT_BUDGET // (2 * delta.shape[2] ** 2))
    return torch.cat([(torch.bmm(a.transpose(1, 2), a) * torch.bmm(d.transpose(1, 2), d)).sum(dim=(1, 2))
                      for d, a in zip(delta.split(step), columns.split(step))])


def _materialised_sq_norms(delta: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Per-sample ‖δ Aᵀ‖²_F for δ (B, O, T) and A (B, I, T) by forming δ Aᵀ, in float32."""
    step = max(1, ELEMENT_BUDGET // (delta.shape[1] * columns.shape[1]))
    return torch.cat([torch.bmm(d, a.transpose(1, 2)).square().sum(dim=(1, 2))
                      for d, a in zip(delta.split(step), columns.split(step))])
