"""Weight clipping (team Z6, MAI 2022 report, sec. 4.1), on by default in FP32 and QAT training.

Why: TFLite quantizes conv weights symmetrically per output channel: the step is
``max|w_c| / 127`` for channel c. When a channel's weights are skewed (most of them small and
on one side, a few large outliers; Z6 found this in the first conv, which sees raw [0, 255]
pixels), the outliers set the step and every other weight of the channel is quantized
coarsely; the error enters at the first layer and accumulates through the network.

Method: after every optimizer step, each trainable conv kernel that reads the RGB image
(3 input channels: the first conv) is clipped, per output channel c, to
``[mean_c - k * std_c, mean_c + k * std_c]``, where mean and std are taken over the
channel's kh * kw * 3 weights. The network trains (and QAT fine-tunes) with its first-layer
outliers bounded, so the symmetric int8 grid ``max|w_c| / 127`` is fine for all of them.
``k`` defaults to :data:`DEFAULT_K` = 2.5 (smaller clips harder): a 3x3x3 channel (27
weights) is only clipped when it has a genuine outlier; uniform weights never exceed
1.73 std, Gaussian ones rarely 2.5.

Deeper kernels are left alone on purpose. A collapsed re-parameterized block carries its
identity branch as a centre-tap weight near 1 among weights near 0: a legitimate outlier
(about 17 std). Clipping every kernel cut that identity path in SCSRN's collapsed blocks at
the first QAT step and cost 5 dB; the first conv is a plain conv in every model. The frozen
nearest-conv anchor also reads the image but is not trainable, so it keeps its exact 0/1
weights. Biases are not clipped: TFLite keeps them in int32.

Training loop use (both stages, FP32 on the training graph and QAT on the quantized
deploy graph)::

    from mai_sr.models.qat.weight_clip import apply_weight_clip

    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    apply_weight_clip(model)          # k=DEFAULT_K; skip it for --no-weight-clip

It works eagerly and inside ``tf.function``. Under a ``tf.distribute`` strategy, call it in
cross-replica context (after ``strategy.run(step, ...)``, not inside the replica function),
where an assignment updates every mirror. :func:`kernel_variables` lists what gets clipped.
"""

from __future__ import annotations

from mai_sr._tf import tf

DEFAULT_K = 2.5


def clip_kernel(kernel, k: float = DEFAULT_K):
    """`kernel` (kh, kw, in, out) clipped per output channel to mean +- k * std."""
    kernel = tf.convert_to_tensor(kernel)
    axes = list(range(len(kernel.shape) - 1))
    mean = tf.reduce_mean(kernel, axis=axes)
    std = tf.math.reduce_std(kernel, axis=axes)
    return tf.clip_by_value(kernel, mean - k * std, mean + k * std)


def kernel_variables(model) -> list:
    """The trainable conv kernels of `model` that read the RGB image: what gets clipped.

    4-D variables named ``.../kernel`` with 3 input channels. Looking at variables rather
    than layers finds them inside QAT wrappers (where the layer attribute holds the
    fake-quantized tensor during a call) and inside re-parameterizable blocks alike.
    """
    return [v for v in model.trainable_variables
            if len(v.shape) == 4 and v.shape[2] == 3 and v.name.split(":")[0].endswith("kernel")]


def apply_weight_clip(model, k: float = DEFAULT_K) -> None:
    """Clip the first-layer conv kernels of `model` in place (see the module docstring)."""
    if not k > 0:
        raise ValueError(f"apply_weight_clip: k must be > 0, got {k!r}")
    for variable in kernel_variables(model):
        variable.assign(clip_kernel(variable, k))
