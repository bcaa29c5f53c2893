"""LEAD's whole-network NTK: per-sample squared gradient norms of F = h∘f over every trainable parameter.

For a sample x the pNTK gradient is g = ∇_θ s(x) with ``s(x) = (1/√K) Σ_j F_j(x)``, F = h∘f the backbone f
followed by LEAD's random head h (:func:`lead_hub.metrics._lead_ntk.ntk_head`: the same weights, input columns
and standardisation that ``lead(..., ntk="head")`` uses) and θ all trainable parameters of both. LEAD's λ̄_k is
the mean of ‖g‖² over the NTK rows of class k, so only these per-sample norms are needed. They split exactly:

    ‖g‖² = ‖∇_head s‖² + ‖∇_backbone s‖²,

the head part in closed form from the features (float64, ``per_sample_gradient_sq_norms``), the backbone part
from the model: the squared norms of the per-sample gradients of s w.r.t. every backbone parameter that reaches
the features, summed in float32 per parameter tensor (or layer), then in float64. BatchNorm runs in eval mode (running
statistics, so samples stay independent); the images go through the backbone's own preprocessing, exactly as in
feature extraction. Parameters that do not reach the pooled features (a source classifier) have zero gradient and
are left out.

How: for networks made of convolutions (timm's SAME-padded ones included), BatchNorm (timm's BatchNormAct2d
included) and Linear layers, i.e. the CNNs of the zoo, by per-layer formulas from one batched forward and one
backward (:mod:`lead_hub.per_sample_norms`, several times faster); for any other network (transformers, ...) by
``torch.func`` (``vmap`` over ``grad`` of a ``functional_call``), exact for every layer type without per-layer
code, and an info line says so. Both equal a one-backward-per-sample autograd loop up to float32 round-off.
Opacus refuses modules with buffers (every BatchNorm), and BackPACK fails on timm's in-place activations; all are
measured in ``benchmarks/bench_ntk.py``.

Rounding: a ReLU6/ReLU whose input sits within round-off of a kink lets the gradient through in one batch layout
and not in another, so in float32 a per-sample norm can differ between batch sizes or devices by up to 5e-3
relative (measured against the one-sample-at-a-time autograd loop, ``benchmarks/bench_ntk.py methods``: one gate
of ``mobilenetv1_025.coral_in1k`` at +1.6e-6 in one layout and −8.6e-6 in the loop's); the median differs by ~5e-7.

Results are cached beside the features (``<cache_dir>/ntk/``), one entry per (model, revision, image size,
dataset sample, head: input kind, widths, seed, K and a digest of its input transform), row by row: a request
computes only the rows the entry lacks, in chunks written atomically, so an interrupted run resumes and a
union of row sets (the benchmark's regimes) is computed once. :func:`sample_sq_norms_many` shards models across
the processes of ``accelerate launch`` like :func:`lead_hub.features.extract_many`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from lead_hub.data import LabeledImages
from lead_hub.decoding import error_line
from lead_hub.features import (_atomic_save_npz, _load_checked_npz, _process_state, _TransformedImages,
                               _whole_batch, _worker_count, dataset_fingerprint, request_folder, sample_request)
from lead_hub.metrics._lead_ntk import NtkHead, ntk_head, ntk_rows, per_sample_gradient_sq_norms
from lead_hub.metrics.lead import LeadOptions
from lead_hub.models import Backbone, load_backbone, resolve_revision
from lead_hub.public_names import public_model_id
from lead_hub.per_sample_norms import LayerwiseSqNorms, UnsupportedNetwork

logger = logging.getLogger(__name__)

# Bump when the meaning of a cached norm changes: old entries are then never read.
NTK_FORMAT_VERSION = 1
#: Samples per batched gradient pass. Memory on the torch.func path is about batch_size × (trainable parameters)
#: floats for the per-sample gradients (32 × 6.1M × 4 B = 0.8 GB for EfficientNet-Lite2), on the layer-wise path
#: the batch's activations plus one layer's formula (≤ 64 MB); halved on out-of-memory.
DEFAULT_BATCH_SIZE = 32
#: Rows per cache file (the unit of resumption).
DEFAULT_CHUNK_ROWS = 64


class NtkUnavailable(RuntimeError):
    """The whole-network NTK cannot be computed for a model (its weights cannot be loaded for gradients)."""


@dataclass
class NtkNorms:
    """Per-sample squared gradient norms of F = h∘f for ``rows`` of a dataset sample.

    ``rows`` (ascending int64) index the :class:`~lead_hub.data.LabeledImages` they were computed on;
    ``sq_norms = head_sq_norms + backbone_sq_norms`` (float64). ``trainable_parameters`` counts the backbone
    parameters whose gradient entered. ``seconds``, ``device`` and ``batch_size`` describe the rows computed by
    this call (``computed_rows`` of them; the others came from the cache).
    """

    model_id: str
    revision: str
    image_size: int | None
    head_input: str
    rows: np.ndarray
    sq_norms: np.ndarray
    head_sq_norms: np.ndarray
    backbone_sq_norms: np.ndarray
    trainable_parameters: int
    computed_rows: int
    seconds: float
    device: str
    batch_size: int

    def vector(self, num_samples: int) -> np.ndarray:
        """The N-vector ``lead(..., ntk_sq_norms=...)`` reads: ``sq_norms`` on ``rows``, NaN elsewhere."""
        full = np.full(num_samples, np.nan)
        full[self.rows] = self.sq_norms
        return full


def sample_sq_norms(
    backbone: Backbone | str,
    images: LabeledImages,
    rows: Sequence[int] | np.ndarray,
    features: np.ndarray,
    *,
    scored_rows: Sequence[int] | np.ndarray | None = None,
    num_classes: int | None = None,
    head_input: str = "standardized",
    widths: tuple[int, ...] = (1024, 2048),
    seed: int = 0,
    image_size: int | None = None,
    revision: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    dataset_key: str | Mapping | None = None,
    progress: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> NtkNorms:
    """‖∇_θ (1/√K) Σ_j F_j(x_i)‖² for every row i in ``rows`` of ``images``, θ all trainable parameters of F = h∘f.

    ``backbone``: a loaded :class:`~lead_hub.models.Backbone`, or a model id loaded here (with ``revision`` and
    ``image_size``, as for extraction); a model that cannot be loaded raises :class:`NtkUnavailable`.
    ``features``: the model's extracted features on every row of ``images`` (N×D, as ``extract_features`` gives
    them). They define the head exactly as LEAD does on the sample it scores, ``scored_rows`` of ``images``
    (default: all rows): :func:`~lead_hub.metrics._lead_ntk.ntk_head` of ``features[scored_rows]`` with K =
    ``num_classes`` (default: the number of distinct labels among ``scored_rows``), ``widths``, ``seed`` and
    ``head_input`` (``"standardized"``: column statistics of that sample, held constant; ``"raw"``). Pass the same
    values as LEAD's ``head_widths``, ``seed`` and resolved ``head_input``.

    For the benchmark: the union of every regime's NTK rows is one call per distinct head (with raw head inputs
    one per model; standardised heads differ per scored sample, so one call per low-data draw, with that draw as
    ``scored_rows``); cached rows are never recomputed. ``cache_dir``/``dataset_key`` as in
    :func:`lead_hub.features.extract_features`. Returns an :class:`NtkNorms`; ``.vector(N)`` is LEAD's input.
    """
    if batch_size < 1 or chunk_rows < 1:
        raise ValueError(f"batch_size ({batch_size}) and chunk_rows ({chunk_rows}) must be >= 1")
    rows = _checked_rows(rows, len(images), "rows")
    scored = np.arange(len(images)) if scored_rows is None else _checked_rows(scored_rows, len(images), "scored_rows")
    features = np.asarray(features)
    if features.ndim != 2 or len(features) != len(images):
        raise ValueError(f"features must be the model's N×D features on all {len(images)} rows of the sample, got "
                         f"shape {features.shape}")
    if num_classes is None:
        num_classes = len(np.unique(np.asarray(images.labels)[scored]))
    head = ntk_head(features[scored], num_classes, widths=tuple(widths), seed=seed, head_input=head_input)
    if isinstance(backbone, str):  # named by id: loaded only if some row is not in the cache
        model_id, model_revision, model_size = backbone, _revision_for_gradients(backbone, revision), image_size
    else:
        model_id, model_revision, model_size = backbone.model_id, backbone.revision, backbone.image_size
    entry = None
    if cache_dir is not None:
        identity = dataset_key if dataset_key is not None else dataset_fingerprint(images)
        entry = _NtkCache.for_request(cache_dir, model_id, model_revision, model_size, identity, images, head,
                                      head_input)
    known = entry.load() if entry is not None else {}
    todo = np.array([row for row in rows if int(row) not in known], dtype=np.int64)
    started = time.perf_counter()
    device = _process_state().device
    trainable, used_batch = 0, batch_size
    if len(todo):
        if isinstance(backbone, str):
            backbone = _load_for_gradients(backbone, revision, image_size)
        network = backbone.network.to(device).eval()
        try:
            computed, trainable, used_batch = _compute(backbone, network, images, todo, head, device, batch_size,
                                                       _worker_count(num_workers), progress, chunk_rows, entry,
                                                       len(rows) - len(todo))
        finally:
            network.to("cpu")
        known.update(computed)
    elif entry is not None:
        trainable = entry.trainable_parameters()
    seconds = time.perf_counter() - started
    backbone_part = np.array([known[int(row)] for row in rows], dtype=np.float64)
    head_part = per_sample_gradient_sq_norms(head.head, head.inputs(features, rows))
    return NtkNorms(model_id, model_revision, model_size, head_input, rows, head_part + backbone_part, head_part,
                    backbone_part, trainable, len(todo), seconds, str(device), used_batch)


def sample_ids(images: LabeledImages) -> np.ndarray:
    """The samples' stable identities LEAD keys its per-sample choices by: each row's index in its source split
    (``images.row_indices``), or the row's position in the sample when the source has none."""
    return np.arange(len(images)) if images.row_indices is None else np.asarray(images.row_indices, dtype=np.int64)


def lead_sq_norms(backbone: Backbone | str, images: LabeledImages, features: np.ndarray,
                  lead_options: Mapping | None = None, *, scored_rows: Sequence[int] | np.ndarray | None = None,
                  **options) -> NtkNorms:
    """The norms LEAD reads with ``ntk="full"`` and the options ``lead_options`` when it scores the rows
    ``scored_rows`` of ``images`` (default: all), i.e. ``lead(features[scored_rows], labels[scored_rows],
    sample_ids=sample_ids(images)[scored_rows], ntk_sq_norms=result.vector(len(images))[scored_rows], ...)``:
    :func:`sample_sq_norms` on LEAD's NTK rows of that sample (``ntk_rows`` keyed by the sample ids) through LEAD's
    head (``head_widths``, ``seed``, resolved ``head_input``). ``options`` are those of :func:`sample_sq_norms`
    (cache, batch size, progress, ...). For the benchmark, one call per model and regime draw: rows already in the
    cache under the same head are not recomputed."""
    settings = LeadOptions(**(lead_options or {}))
    scored = np.arange(len(images)) if scored_rows is None else np.asarray(scored_rows, dtype=np.int64)
    _, labels = np.unique(np.asarray(images.labels)[scored], return_inverse=True)
    chosen = ntk_rows(labels, int(labels.max()) + 1, sample_ids=sample_ids(images)[scored],
                      samples_per_class=settings.ntk_samples_per_class, seed=settings.seed)
    return sample_sq_norms(backbone, images, scored[np.concatenate(chosen)], features, scored_rows=scored,
                           head_input=settings.resolved_head_input(), widths=tuple(settings.head_widths),
                           seed=settings.seed, **options)


def lead_ntk_provenance(lead_options: Mapping | None) -> dict:
    """What a leaderboard records about LEAD's NTK: the same for every model of it."""
    settings = LeadOptions(**(lead_options or {}))
    scope = ("all trainable parameters of backbone and random head (BatchNorm in eval mode), float32 per-sample "
             "gradients" if settings.ntk == "full" else "the random head's parameters, in closed form")
    return {"kind": settings.ntk, "head_input": settings.resolved_head_input(), "parameters": scope,
            "samples_per_class": settings.ntk_samples_per_class,
            **({"device": str(_process_state().device)} if settings.ntk == "full" else {})}


def sample_sq_norms_many(
    model_ids: Sequence[str],
    images: LabeledImages,
    rows: Sequence[int] | np.ndarray,
    features: Mapping[str, np.ndarray],
    *,
    cache_dir: str | Path | None = None,
    image_size: int | None = None,
    revisions: Mapping[str, str] | None = None,
    **options,
) -> dict[str, NtkNorms]:
    """:func:`sample_sq_norms` for every model of ``model_ids`` (``features[model_id]`` its features on
    ``images``), keyed by model id. Under ``accelerate launch`` with P processes, process p computes models
    p, p + P, ... into ``cache_dir`` (required then) and every process returns all results, read back from the
    cache. ``options`` are those of :func:`sample_sq_norms`, identical for every model."""
    state = _process_state()
    if state.num_processes > 1 and cache_dir is None:
        raise ValueError("sample_sq_norms_many under accelerate launch gathers results through the cache: pass "
                         "cache_dir")
    revisions = dict(revisions or {})

    def one(model_id: str, quiet: bool = False) -> NtkNorms:
        return sample_sq_norms(model_id, images, rows, features[model_id], cache_dir=cache_dir,
                               image_size=image_size, revision=revisions.get(model_id),
                               **({**options, "progress": False} if quiet else options))

    mine = {model_id: one(model_id) for model_id in list(model_ids)[state.process_index::state.num_processes]}
    if state.num_processes > 1:
        gather_object([sorted(mine)])  # every process has written its models before anyone reads them back
        mine.update({model_id: one(model_id, quiet=True) for model_id in model_ids if model_id not in mine})
    return {model_id: mine[model_id] for model_id in model_ids}


# ---- computation -------------------------------------------------------------------------------------------------

def _checked_rows(rows, num_samples: int, name: str) -> np.ndarray:
    array = np.asarray(rows)
    if array.ndim != 1 or (len(array) and array.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D array of row indices into the sample, got shape {array.shape} and "
                         f"dtype {array.dtype}")
    array = np.unique(array.astype(np.int64))
    if len(array) and (array[0] < 0 or array[-1] >= num_samples):
        raise ValueError(f"{name} must index the {num_samples} rows of the sample, got values from {array[0]} to "
                         f"{array[-1]}")
    return array


def _load_for_gradients(model_id: str, revision: str | None, image_size: int | None) -> Backbone:
    try:
        return load_backbone(model_id, revision=revision, image_size=image_size)
    except Exception as error:  # noqa: BLE001 - re-raised with what it means for the NTK
        raise _unavailable(model_id, error) from error


def _revision_for_gradients(model_id: str, revision: str | None) -> str:
    try:
        return resolve_revision(model_id, revision=revision)
    except Exception as error:  # noqa: BLE001 - re-raised with what it means for the NTK
        raise _unavailable(model_id, error) from error


def _unavailable(model_id: str, error: Exception) -> NtkUnavailable:
    return NtkUnavailable(f"{model_id}: the whole-network NTK needs the model's weights to take gradients, and the "
                          f"model could not be loaded ({type(error).__name__}: {error}); make the weights available, "
                          "or score every model with lead.ntk=head")


class _SummedLogit(torch.nn.Module):
    """s(z) = (1/√K) Σ_j h_j(z) of the random head, as a float32 function of the pooled features z (D,).

    The head's biases are zero, so they do not enter the forward pass (their gradient is in the closed form)."""

    def __init__(self, head: NtkHead, device: torch.device):
        super().__init__()
        def tensor(array):
            return torch.tensor(np.asarray(array), dtype=torch.float32, device=device)

        self.columns = torch.as_tensor(head.columns, dtype=torch.long, device=device)
        self.shift, self.scale = tensor(head.shift), tensor(head.scale)
        self.hidden = [tensor(weights) for weights in head.head.hidden]
        num_outputs = head.head.output.shape[0]
        self.output = tensor(head.head.output.sum(axis=0) / math.sqrt(num_outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        activation = (features[..., self.columns] - self.shift) / self.scale
        for weights in self.hidden:
            activation = torch.relu(activation @ weights.T)
        return activation @ self.output


def _compute(backbone, network, images, todo, head, device, batch_size, num_workers, progress, chunk_rows, entry,
             cached_count):
    """Backbone parts of ‖g‖² for the rows ``todo``: {row: value}, the trainable parameter count and the batch size."""
    summed_logit = _SummedLogit(head, device)
    buffers = dict(network.named_buffers())
    trainable = {name: p.detach() for name, p in network.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in network.named_parameters() if not p.requires_grad}
    loader = torch.utils.data.DataLoader(
        _TransformedImages(images, backbone),
        batch_sampler=[todo[start:start + chunk_rows].tolist() for start in range(0, len(todo), chunk_rows)],
        collate_fn=_whole_batch, num_workers=num_workers, pin_memory=device.type == "cuda")

    def sample_logit(params, pixels):
        outputs = functional_call(network, (params, frozen, buffers), (pixels.unsqueeze(0),))
        return summed_logit(outputs[0][0])

    def sample_sq_norm(params, pixels):
        gradients = grad(sample_logit)(params, pixels)
        return torch.stack([gradient.square().sum() for gradient in gradients.values()])

    batched = vmap(sample_sq_norm, in_dims=(None, 0))

    def batch_norms(batch_pixels):
        nonlocal layerwise
        if layerwise is not None:
            try:
                return layerwise(lambda inputs: summed_logit(network(inputs)[0]), batch_pixels).cpu().numpy()
            except UnsupportedNetwork as reason:  # found only while running (a layer called twice, ...)
                layerwise = _layerwise_or_none(backbone.model_id, network, reached, reason)
        return batched(reached, batch_pixels).double().sum(dim=1).cpu().numpy()

    results, micro_batch, reached, layerwise = {}, batch_size, None, None
    bar = tqdm(total=cached_count + len(todo), initial=cached_count, desc=f"NTK {public_model_id(backbone.model_id)}",
               unit="img", disable=not progress)
    for chunk_index, pixels in enumerate(loader):
        pixels = pixels.to(device)
        if reached is None:
            reached = _reaching_parameters(sample_logit, trainable, pixels[0])
            layerwise = _layerwise_or_none(backbone.model_id, network, reached)
        chunk_norms = [] if reached else [np.zeros(len(pixels))]  # a frozen backbone adds nothing to the head's
        start = 0 if reached else len(pixels)
        while start < len(pixels):
            try:
                chunk_norms.append(batch_norms(pixels[start:start + micro_batch]))
            except torch.OutOfMemoryError:
                if micro_batch == 1:
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                micro_batch //= 2
                logger.warning("%s: out of memory in the NTK pass, batch size halved to %d", backbone.model_id,
                               micro_batch)
                continue
            start += micro_batch
        bar.update(len(pixels))
        chunk_rows_done = todo[chunk_index * chunk_rows:chunk_index * chunk_rows + len(pixels)]
        values = np.concatenate(chunk_norms)
        if entry is not None:
            entry.write(chunk_rows_done, values, sum(p.numel() for p in reached.values()))
        results.update(zip(chunk_rows_done.tolist(), values.tolist()))
    bar.close()
    return results, sum(p.numel() for p in reached.values()), micro_batch


def _layerwise_or_none(model_id: str, network, reached: dict, reason: Exception | None = None):
    """The layer-wise per-sample norms of ``reached`` (one batched backward), or None where the network has a
    layer they do not cover: the exact ``torch.func`` path then computes them (equal up to float32 round-off)."""
    if reason is None:
        try:
            return LayerwiseSqNorms(network, reached)
        except UnsupportedNetwork as unsupported:
            reason = unsupported
    logger.info("%s: per-sample gradient norms by torch.func (exact, slower) because %s", model_id, reason)
    return None


def _reaching_parameters(sample_logit, trainable: dict, pixels: torch.Tensor) -> dict:
    """The trainable parameters s depends on (one autograd pass on one sample); the others have zero gradient."""
    if not trainable:
        return {}
    params = {name: p.clone().requires_grad_(True) for name, p in trainable.items()}
    gradients = torch.autograd.grad(sample_logit(params, pixels), list(params.values()), allow_unused=True)
    return {name: trainable[name] for name, gradient in zip(params, gradients) if gradient is not None}


# ---- cache -------------------------------------------------------------------------------------------------------

class _NtkCache:
    """One cache folder ``<cache_dir>/ntk/<model>-<key>``: ``request.json`` and ``rows-<digest>.npz`` files, each
    holding ``rows`` and their ``backbone_sq_norms`` (float64), written atomically once computed."""

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def for_request(cls, cache_dir, model_id, revision, image_size, dataset_identity, images, head: NtkHead,
                    head_input: str) -> _NtkCache:
        transform = hashlib.sha256()
        for array in (head.columns.astype(np.int64), head.shift.astype(np.float64), head.scale.astype(np.float64)):
            transform.update(np.ascontiguousarray(array).tobytes())
        request = {
            "ntk_format_version": NTK_FORMAT_VERSION,
            **sample_request(model_id, revision, image_size, dataset_identity, images),
            "head": {"input": head_input, "widths": [int(w) for w in (w.shape[0] for w in head.head.hidden)],
                     "num_outputs": int(head.head.output.shape[0]), "input_dim": int(len(head.columns)),
                     "input_transform_sha256": transform.hexdigest(),
                     "weights_sha256": _head_digest(head)},
            "parameters": "every trainable backbone parameter reaching the features; BatchNorm in eval mode",
            "dtype": "float32",
        }
        return cls(request_folder(Path(cache_dir) / "ntk", model_id, request))

    def load(self) -> dict[int, float]:
        """Squared norms by row, from every file that reads back whole (:meth:`_files`)."""
        known = {}
        for arrays in self._files():
            known.update(zip(arrays["rows"].tolist(), arrays["backbone_sq_norms"].tolist()))
        return known

    def trainable_parameters(self) -> int:
        for arrays in self._files():
            return int(arrays["trainable_parameters"])
        return 0

    def _files(self) -> Iterator[dict[str, np.ndarray]]:
        """The arrays of each ``rows-*.npz``, checked (checksum, finite values, one norm per row); a file that fails
        is removed with a one-line warning, so its rows are computed again."""
        for path in sorted(self.folder.glob("rows-*.npz")):
            try:
                arrays = _load_checked_npz(path)
                if arrays["rows"].shape != arrays["backbone_sq_norms"].shape:
                    raise ValueError(f"{path.name}: {arrays['rows'].shape} rows but "
                                     f"{arrays['backbone_sq_norms'].shape} norms")
            except Exception as error:  # noqa: BLE001 - an unreadable file is recomputed, never trusted
                logger.warning("NTK cache file %s is unreadable (%s); recomputing its rows", path, error_line(error))
                path.unlink(missing_ok=True)
                continue
            yield arrays

    def write(self, rows: np.ndarray, backbone_sq_norms: np.ndarray, trainable_parameters: int) -> None:
        digest = hashlib.sha256(np.ascontiguousarray(rows, np.int64).tobytes()).hexdigest()[:16]
        _atomic_save_npz(self.folder / f"rows-{digest}.npz", rows=rows.astype(np.int64),
                         backbone_sq_norms=np.asarray(backbone_sq_norms, np.float64),
                         trainable_parameters=np.int64(trainable_parameters))


def _head_digest(head: NtkHead) -> str:
    digest = hashlib.sha256()
    for weights in (*head.head.hidden, head.head.output):
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()
