"""A model's recipe: everything about *how* a model is run that differs between the
implementations yolocli reproduces, decided once when the model is opened.

A darknet network gives the answers of the darknet that trained it, and darknet has two
flavours that disagree (measured against each one's own ``detector test``):

=====================  ===========================================  ================================
                       ``pjreddie`` (yolov2, yolov3)                ``alexeyab`` (yolov4, ...)
=====================  ===========================================  ================================
batch norm, folded     ``scale / (sqrt(var) + 1e-6)``               ``scale / sqrt(var + 1e-5)``
NMS                    per-class IoU NMS                            the last ``[yolo]``'s
                                                                    ``nms_kind``: ``greedynms`` is
                                                                    DIoU-NMS (``(d²/c²)^0.6``),
                                                                    ``diounms`` the same with
                                                                    ``beta_nms``; else IoU NMS
input                  letterboxed                                  resized to the network
                                                                    (stretched) unless
                                                                    ``[net] letter_box=1``
=====================  ===========================================  ================================

(AlexeyAB darknet 59596d7: ``network.c`` fuse_conv_batchnorm, ``box.c`` diounms_sort and
box_diou, ``detector.c`` test_detector; pjreddie darknet f6afaab: ``blas.c`` normalize_cpu.)

`Recipe` is one small frozen object per model that the rest of the pipeline *asks* (how to
prepare an image, how to fold batch norm, how to decode the raw outputs, which NMS to run,
what the compiled graph's cache key is), so no other module tests a family or flavour.
`darknet_recipe` chooses one for a darknet cfg: the registry's word for a registered model,
the cfg's own keys for anyone else's (keys only AlexeyAB's darknet reads mean ``alexeyab``),
or the caller's override.

Another family (not darknet) plugs in with its own frozen subclass, chosen once where its
model is opened: it sets ``family`` (and ``flavour``, ``why``, the input fields,
``nms_kind``, ``names_from``) and overrides the hooks whose darknet behaviour does not fit:
`Recipe.preprocessor` and `Recipe.geometry` (its own resize and padding), `Recipe.decode`
(its own output layout, to the same candidate rows), `Recipe.fold_bn` with ``bn="none"``
for graphs that come folded. `Recipe.nms` and `Recipe.cache_key` serve every family as they
are. The base class checks that a darknet recipe asks for darknet's own input (its
preprocessor implements nothing else).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from yolocli.errors import ModelError, OptionError

if TYPE_CHECKING:
    from yolocli.families.darknet import cfg as darknet
    from yolocli.families.darknet.heads import YoloHead
    from yolocli.families.darknet.letterbox import Letterbox


class Preparer(Protocol):
    """What `Recipe.preprocessor` gives: image -> (network input (3, h, w), geometry)."""

    def __call__(
        self, image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], Letterbox]: ...


FLAVOURS = ("pjreddie", "alexeyab")
NMS_KINDS = ("iou", "diou")
BN_FORMULAS = ("pjreddie", "alexeyab", "none")

# Batch-norm epsilons: pjreddie adds .000001f to sqrt(variance) (blas.c normalize_cpu);
# AlexeyAB adds .00001 to the variance inside the sqrt, in double (network.c
# fuse_conv_batchnorm).
PJREDDIE_BN_EPS = 1e-6
ALEXEYAB_BN_EPS = 1e-5
DEFAULT_BETA_NMS = 0.6  # AlexeyAB's default beta_nms, and greedynms' fixed exponent
_DARKNET_INPUT = (0.5, True, True, 1.0 / 255.0)  # pad_value, centred, rgb, scale

# Keys that AlexeyAB's darknet reads and pjreddie's never does (the options parser.c looks
# up in each, at 59596d7 / f6afaab): a cfg that sets one was written for AlexeyAB's.
ALEXEYAB_KEYS = frozenset(
    """adversarial_lr antialiasing assisted_excitation attention augment_speed
    badlabels_rejection_percentage beta_nms bin_output blur bottleneck burnin_update cbn
    cls_normalizer contrastive contrastive_color contrastive_jit_flip contrastive_neg_max
    coordconv counters_per_class cutmix delta_normalizer dilation dont_update dropblock
    dropblock_size_abs dropblock_size_rel dynamic_minibatch ema_alpha embedding_layer
    equidistant_point focal_loss gaussian_noise grad_centr group_id iou_loss iou_normalizer
    iou_thresh iou_thresh_kind label_smooth_eps learning_rate_min letter_box max_chart_loss
    max_delta maxpool_depth maxpool_zero_nonmax mixup mosaic mosaic_bound new_coords
    nms_kind num_sigmas_reject_badlabels obj_normalizer objectness_smooth optimized_memory
    out_channels resize resize_step rotate scale_wh scale_x_y seq_scales
    sequential_subdivisions sgdr_cycle sgdr_mult share_index sim_thresh stretch stretch_sway
    stride_x stride_y sway track track_ciou_norm track_history_size train_only_bn
    try_fix_nan uc_normalizer unsupervised use_cuda_graph weights_normalization
    weights_reject_freq weights_type workspace_size_limit_MB""".split()  # noqa: SIM905 (words read better as words)
)
# Activations only AlexeyAB's darknet has (activations.c).
ALEXEYAB_ACTIVATIONS = frozenset(
    """gelu hard_mish mish normalize_channels normalize_channels_softmax
    normalize_channels_softmax_maxval revleaky swish""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Recipe:
    """How one model is run, chosen once (`darknet_recipe`) and asked by everything after.

    Identity: ``family`` ("darknet"; other families name themselves), ``flavour`` (for
    darknet: "pjreddie" or "alexeyab") and ``why`` (one line: what chose the flavour, for
    ``-v`` and ``--profile``).

    Input preparation: ``letterbox`` keeps the aspect ratio and pads (False: stretched to the
    network input); ``pad_value`` the padding in [0, 1]; ``centred`` puts the image in the
    middle (False: top-left); ``rgb`` feeds RGB (False: BGR); ``scale`` maps uint8 to the
    network's range. ``letterbox_from`` says what set ``letterbox`` (for messages).

    The network: ``bn``, the batch-norm folding formula ("pjreddie", "alexeyab", or "none"
    for a family whose graph comes already folded).

    Keeping candidates: ``nms_kind`` ("iou", or "diou": darknet's DIoU-NMS, computed on
    image-relative coordinates as darknet does) and ``beta_nms``, DIoU's exponent;
    ``single_label``: one class per box, its best (Ultralytics, YOLOv5, YOLOX), where darknet
    reports a box once for every class above the threshold.

    Class names: ``names_from`` ("file": a names file or the registry's; a family that
    embeds them in the model says "model").
    """

    family: str = "darknet"
    flavour: str = "pjreddie"
    why: str = "the default"
    letterbox: bool = True
    letterbox_from: str = "the flavour's default"
    pad_value: float = 0.5
    centred: bool = True
    rgb: bool = True
    scale: float = 1.0 / 255.0
    bn: str = "pjreddie"
    nms_kind: str = "iou"
    beta_nms: float = DEFAULT_BETA_NMS
    names_from: str = "file"
    single_label: bool = False

    def __post_init__(self) -> None:
        if self.family == "darknet" and self.flavour not in FLAVOURS:
            raise OptionError(
                "darknet", f"must be one of {', '.join(FLAVOURS)}, not {self.flavour!r}"
            )
        if self.nms_kind not in NMS_KINDS:
            raise ModelError(f"unknown NMS kind {self.nms_kind!r}; known: {NMS_KINDS}")
        if self.bn not in BN_FORMULAS:
            raise ModelError(f"unknown batch-norm formula {self.bn!r}; known: {BN_FORMULAS}")
        if not self.beta_nms > 0:
            raise ModelError(f"beta_nms must be positive, got {self.beta_nms}")
        darknet_input = (self.pad_value, self.centred, self.rgb, self.scale) == _DARKNET_INPUT
        if self.family == "darknet" and not darknet_input:
            raise ModelError(
                "a darknet recipe feeds darknet's input (0.5 padding, centred, RGB, 1/255); "
                "another preparation needs its own preprocessor (a Recipe subclass)"
            )

    # -- what it is, in words ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """ "darknet (alexeyab)" and the like."""
        return f"{self.family} ({self.flavour})" if self.flavour else self.family

    @property
    def nms_description(self) -> str:
        if self.nms_kind == "diou":
            return f"DIoU-NMS (beta {self.beta_nms:g})"
        return "IoU NMS"

    def describe(self) -> str:
        """One line for ``-v`` and ``--profile``: which flavour ran, why, and what it means."""
        mode = "letterbox" if self.letterbox else "stretch"
        return (
            f"{self.name}, because {self.why}: input {mode} ({self.letterbox_from}), "
            f"batch norm {self.bn}, {self.nms_description}"
        )

    @property
    def cache_key(self) -> str:
        """What of the recipe changes the compiled graph (its cache key includes this)."""
        return f"{self.family}/{self.flavour}/bn={self.bn}"

    def with_letterbox(self, letterbox: bool | None, source: str = "the caller") -> Recipe:
        """This recipe with the input mode set by ``source`` (None: left as it is)."""
        if letterbox is None:
            return self
        return replace(self, letterbox=letterbox, letterbox_from=source)

    # -- the hooks the pipeline calls --------------------------------------------------------

    def geometry(self, width: int, height: int, net_width: int, net_height: int) -> Letterbox:
        """Where a ``width`` x ``height`` image lands in the network input, and the way back
        for boxes (`yolocli.families.darknet.letterbox.Letterbox`)."""
        from yolocli.families.darknet.letterbox import Letterbox

        return Letterbox(width, height, net_width, net_height, not self.letterbox)

    def preprocessor(self, net_width: int, net_height: int) -> Preparer:
        """A callable image -> (network input (3, h, w) float32, geometry), with its own
        reusable buffers (one per thread)."""
        from yolocli.families.darknet.letterbox import Letterboxer

        return Letterboxer(net_width, net_height, stretch=not self.letterbox)

    def decode(
        self,
        outputs: Sequence[npt.NDArray[np.float32]],
        yolo_heads: Sequence[YoloHead],
        net_width: int,
        net_height: int,
        min_score: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """One image's candidate rows ``(R, 5 + C)`` (network-relative cx, cy, w, h,
        objectness, then objectness x class) from its raw outputs: darknet's ``[yolo]``
        decoding (`families.darknet.heads.decode`); only rows that can score above ``min_score``."""
        from yolocli.families.darknet import heads

        return heads.decode(outputs, yolo_heads, net_width, net_height, min_score)

    def fold_bn(
        self, params: darknet.ConvWeights
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """A convolution's (weights, biases) with its batch norm folded in by this recipe's
        formula, in float64 as both darknets compute the factor, stored as float32."""
        weights = np.asarray(params.weights, dtype=np.float32)
        biases = np.asarray(params.biases, dtype=np.float64)
        if params.bn is None:
            return weights, biases.astype(np.float32)
        if self.bn == "none":
            raise ModelError("this model's recipe has no batch-norm formula, but a layer has one")
        scales, means, variances = (np.asarray(a, dtype=np.float64) for a in params.bn)
        if self.bn == "alexeyab":
            # fuse_conv_batchnorm: weights *= (double) scale / sqrt((double) var + .00001)
            factor = scales / np.sqrt(variances + ALEXEYAB_BN_EPS)
            folded = (weights.astype(np.float64) * factor[:, None, None, None]).astype(np.float32)
        else:
            # normalize_cpu: (x - mean) / (sqrt(var) + .000001f), then scale_bias
            factor = scales / (np.sqrt(variances) + PJREDDIE_BN_EPS)
            folded = weights * factor.astype(np.float32)[:, None, None, None]
        return folded.astype(np.float32, copy=False), (biases - means * factor).astype(np.float32)

    def nms(
        self,
        xyxy: npt.NDArray[np.floating],
        scores: npt.NDArray[np.floating],
        threshold: float,
        class_ids: npt.ArrayLike | None,
        image_size: tuple[int, int],
    ) -> npt.NDArray[np.int64]:
        """Indices of the boxes (image pixels, xyxy) this recipe's NMS keeps, best first.

        ``image_size`` (width, height): darknet's DIoU is computed on image-relative
        coordinates, where its distance term is not the same as in pixels."""
        from yolocli import ops

        if self.nms_kind == "diou":
            return ops.diou_nms(
                xyxy, scores, threshold, class_ids, beta=self.beta_nms, scale=image_size
            )
        return ops.nms(xyxy, scores, threshold, class_ids)


def darknet_flavour(
    sections: Sequence[darknet.Section], registered: str | None = None
) -> tuple[str, str]:
    """(flavour, why) for a darknet cfg: the registry's word if it has one, else inferred
    from the cfg (`ALEXEYAB_KEYS`, `ALEXEYAB_ACTIVATIONS`)."""
    if registered is not None:
        return registered, f"the registry says this model comes from {registered}'s darknet"
    found: list[str] = []
    for sec in sections:
        for key in sec.options:
            if key in ALEXEYAB_KEYS and key not in found:
                found.append(key)
        activation = sec.options.get("activation")
        if activation in ALEXEYAB_ACTIVATIONS and f"activation={activation}" not in found:
            found.append(f"activation={activation}")
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        return "alexeyab", f"the cfg uses {shown}, which only AlexeyAB's darknet reads"
    return "pjreddie", "the cfg uses nothing only AlexeyAB's darknet reads"


def darknet_recipe(
    sections: Sequence[darknet.Section],
    *,
    registered: str | None = None,
    flavour: str | None = None,
    letterbox: bool | None = None,
) -> Recipe:
    """The recipe for a darknet network from its cfg ``sections``.

    ``registered``: the registry's flavour for a registered model. ``flavour``: the caller's
    override (``--darknet``). ``letterbox``: the caller's input mode (``--letterbox`` /
    ``--no-letterbox``; None: the flavour's default, which for ``alexeyab`` is the cfg's
    ``[net] letter_box``).
    """
    if flavour is not None:
        if flavour not in FLAVOURS:
            raise OptionError("darknet", f"must be one of {', '.join(FLAVOURS)}, not {flavour!r}")
        chosen, why = flavour, f"it was asked for (--darknet {flavour})"
    else:
        chosen, why = darknet_flavour(sections, registered)
    if chosen == "pjreddie":
        recipe = Recipe(flavour="pjreddie", why=why, letterbox=True, bn="pjreddie")
        return recipe.with_letterbox(letterbox)
    net = sections[0].options if sections else {}
    boxed = _int_option(net.get("letter_box"), 0) != 0
    nms_kind, beta = "iou", DEFAULT_BETA_NMS
    yolos = [s for s in sections if s.type in ("yolo", "gaussian_yolo", "region")]
    if yolos:  # test_detector takes the last detection layer's
        last = yolos[-1].options
        kind = last.get("nms_kind", "default")
        if kind == "greedynms":
            nms_kind = "diou"  # box_diou: its exponent is fixed at 0.6
        elif kind == "diounms":
            nms_kind, beta = "diou", _float_option(last.get("beta_nms"), DEFAULT_BETA_NMS)
    recipe = Recipe(
        flavour="alexeyab",
        why=why,
        letterbox=boxed,
        letterbox_from=f"[net] letter_box={int(boxed)}",
        bn="alexeyab",
        nms_kind=nms_kind,
        beta_nms=beta,
    )
    return recipe.with_letterbox(letterbox)


def _int_option(text: str | None, default: int) -> int:
    """darknet's atoi: a leading whole number, 0 for anything else."""
    if text is None:
        return default
    digits = ""
    for ch in text.strip():
        if ch.isdigit() or (not digits and ch in "+-"):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


def _float_option(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return value if value > 0 else default
