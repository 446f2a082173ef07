"""Building models: ``create_model(name, scale, deploy, **overrides)``, ``collapse``, ``qat/``.

The names are :mod:`mai_sr.registry`'s (TF-free); each model lives in its own module with a
``build(scale, **config)`` function, a ``DEFAULTS`` dict (the training graph), a ``DEPLOY``
dict (what ``deploy=True`` changes) and a ``RECIPE`` dict (its training defaults, read by
:mod:`mai_sr.train`). Overrides win over ``DEFAULTS`` and ``DEPLOY``, so
``create_model("abpn", deploy=True, clip="after_d2s")`` builds the slow published head on
purpose. Adding a model is one module plus one line in ``mai_sr.registry.MODELS``.

All models take RGB in [0, 255] (no normalisation), any H x W, and return (sH, sW, 3) in
[0, 255] for scale s in ``mai_sr.registry.SCALES``. Inside, training graphs work in [0, 1]
(``normalize=True``: the first conv scales its input by 1/255, the last conv its output by
255); ``collapse`` folds those fixed factors into the deploy graph's plain convs.

The QAT graph of a deploy graph (fake quantization, its activation ranges) and the weight
clipping QAT trains with are :mod:`mai_sr.models.qat`'s: the third graph of a network, built
from the same layers. Importing this package (or ``mai_sr.models.qat``) does not import
TensorFlow; building or collapsing a model does.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from mai_sr.challenge import CHALLENGE_SCALE
from mai_sr.errors import MaiSrError
from mai_sr.registry import (SIZES, check_scale, computes_from, list_models, model_module,
                             published_layout)

if TYPE_CHECKING:
    from mai_sr._tf import keras

__all__ = ["create_model", "collapse", "list_models", "custom_objects", "model_config",
           "relayout"]


def model_config(name: str, deploy: bool = False, **overrides) -> dict[str, Any]:
    """The resolved configuration ``create_model`` would build with (JSON-friendly)."""
    module = model_module(name)
    unknown = sorted(set(overrides) - set(module.DEFAULTS))
    if unknown:
        raise MaiSrError(f"model {name}: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(module.DEFAULTS))}")
    size = SIZES.get(name, {})
    return {**module.DEFAULTS, **size, **(module.DEPLOY if deploy else {}), **overrides}


def create_model(name: str, scale: int = CHALLENGE_SCALE, deploy: bool = False,
                 **overrides) -> keras.Model:
    """Build model ``name`` (see :func:`list_models`) at ``scale`` (2, 3 or 4).

    ``deploy=False`` gives the training graph (re-parameterizable blocks expanded, convs in
    the [0, 1] domain), ``deploy=True`` the inference graph (plain convs on raw pixels,
    nearest-conv anchor, clip before depth-to-space). Overrides are keys of the model's
    ``DEFAULTS``, e.g. ``max_abs_weight=1.0`` (a :class:`~mai_sr.models.blocks.ClipWeights`
    kernel constraint |w| <= 1 on every trainable conv, in deploy units; not the training
    loop's weight clipping), ``normalize=False`` (a training graph on raw pixels) or
    ``input_size=(H, W)`` (a fixed input shape instead of any H x W).
    """
    config = model_config(name, deploy, **overrides)
    check_scale(scale)
    try:
        return model_module(name).build(scale=scale, **config)
    except ValueError as exc:  # a bad option value, e.g. block="foo"
        raise MaiSrError(f"model {name}: {exc}") from None


# relayout() checks the rewrite on real pixels: float32 sums taken in another order differ by
# about 1e-4 grey levels (ECBSR-M4C32: 1.4e-4 on the gate images); a wrong rewrite is off by
# whole grey levels.
RELAYOUT_TOLERANCE = 1e-2


def relayout(deploy: keras.Model, name: str, scale: int, check_lr,
             source: str | None = None) -> tuple[keras.Model, float]:
    """(the deploy graph of `name` at `scale` computing what `deploy`, a deploy graph of
    `source` (default: the published layout of `name`), computes; the largest output
    difference on `check_lr`, uint8 LR images HxWx3, in grey levels).

    `name` is a layout option of `source` (:func:`mai_sr.registry.published_layout`; its
    module's ``relayout`` derives the weights) or a larger network that starts from it
    (:data:`mai_sr.registry.WARM_STARTS`; its module's ``embed``). MaiSrError when `name`
    does not compute `source` or the difference is above :data:`RELAYOUT_TOLERANCE`.
    """
    import numpy as np

    layout = published_layout(name)
    source = source or layout
    if source is None:
        raise MaiSrError(f"model {name} does not compute another network: it is a published "
                         "layout, and no published network starts it")
    if source not in computes_from(name):
        raise MaiSrError(f"model {name} does not compute {source}")
    target = create_model(name, scale=scale, deploy=True)
    module = model_module(name)
    if source == layout:
        module.relayout(deploy, target, images=check_lr)
    else:
        module.embed(deploy, target)
    worst = max(float(np.abs(np.asarray(deploy(lr[None].astype(np.float32)))
                             - np.asarray(target(lr[None].astype(np.float32)))).max())
                for lr in check_lr)
    if not worst <= RELAYOUT_TOLERANCE:
        raise MaiSrError(f"model {name}: the rewritten network differs from {source} by "
                         f"{worst:.3g} grey levels on the check images")
    return target, worst


def custom_objects() -> dict[str, type]:
    """The custom layer/constraint classes, for ``keras.models.load_model``."""
    from mai_sr.models.blocks import CUSTOM_OBJECTS

    return dict(CUSTOM_OBJECTS)


def _deploy_layer(layer):
    """The deploy-graph replacement of one training-graph layer (weights set later)."""
    from mai_sr.models.blocks import FOLDABLE, ConcatAnchor, NearestConvAnchor

    if isinstance(layer, FOLDABLE):
        return layer.deploy_layer()
    if isinstance(layer, ConcatAnchor):
        return NearestConvAnchor(layer.scale, name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def _clip_after_d2s(model: keras.Model) -> dict:
    """{depth_to_space layer: clip layer} for each clip fed only by a depth-to-space."""
    from mai_sr._tf import keras
    from mai_sr.models.blocks import ClipByValue, DepthToSpace, layer_inputs

    producer = {id(layer.output): layer for layer in model.layers}
    uses = Counter(id(t) for layer in model.layers
                   if not isinstance(layer, keras.layers.InputLayer) for t in layer_inputs(layer))
    pairs = {}
    for layer in model.layers:
        if isinstance(layer, ClipByValue):
            source = producer[id(layer.input)]
            if isinstance(source, DepthToSpace) and uses[id(source.output)] == 1:
                pairs[source] = layer
    return pairs


def collapse(model: keras.Model) -> keras.Model:
    """Convert a (trained) training graph into the deploy graph with the same outputs.

    Every re-parameterizable block becomes one Conv2D holding its collapsed kernel and bias,
    and every :class:`~mai_sr.models.blocks.ScaledConv2D` (the [0, 1] training domain) a
    Conv2D with its fixed input/output factors folded into kernel and bias; a concat anchor
    becomes the nearest-conv anchor; a clip after depth-to-space moves before it. Other
    layers are copied with their weights. Works on models built by :func:`create_model` or
    loaded from disk; the input model is not changed.
    """
    from mai_sr._tf import keras
    from mai_sr.models.blocks import FOLDABLE, ConcatAnchor

    # depth_to_space only permutes values, so swapping it with the clip that follows it
    # gives the same output and clips 9x fewer values.
    swap = _clip_after_d2s(model)
    swap.update({clip: d2s for d2s, clip in swap.items()})
    deployed = keras.models.clone_model(
        model, clone_function=lambda layer: _deploy_layer(swap.get(layer, layer)))
    for layer in model.layers:
        if not layer.weights or isinstance(layer, ConcatAnchor):
            continue
        target = deployed.get_layer(layer.name)
        target.set_weights(list(layer.collapse()) if isinstance(layer, FOLDABLE)
                           else layer.get_weights())
    return deployed
