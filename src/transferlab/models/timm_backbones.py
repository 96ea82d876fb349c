"""Any timm model behind the Backbone interface: ``timm:MODEL`` (e.g. ``timm:convnext_atto``,
``timm:resnet18.a1_in1k``, ``timm:vit_tiny_patch16_224``).

Units come from the model's own ``feature_info`` (the stage outputs timm's ``features_only`` returns):
unit i is every module from the end of unit i-1 up to and including feature module i (ResNet: act1 =
the stem, layer1..layer4; ConvNeXt: stages_0..stages_3, the stem riding on the first; ViT: blocks_0..N,
patch and position embedding riding on the first and the final norm on the last). Modules between the
last feature module and the head (EfficientNet's conv_head, ConvNeXt's norm_pre) ride on the last unit,
so ``forward_features`` at the last unit is the model's own ``forward_features``, pooled. The original
classifier is the model's own ``forward_head`` (ViT's class-token pooling, ConvNeXt's head norm), so
the ImageNet logits are timm's; ``reset_classifier`` gives the usual average pool + linear, as for
every backbone. Models whose forward is not such a sequence of modules are refused by name (checked:
every parameter must belong to a unit or the head).

Preprocessing is the model's pretrained config: input side, crop_pct (resize = side / crop_pct),
interpolation, mean and std. Weights (offline only): the Hugging Face hub cache (where
``timm.create_model(NAME, pretrained=True)`` leaves them), then the torch hub cache (older timm
releases), else an error naming the command that fetches them; ``timm:MODEL@PATH`` loads a state_dict
file and ``timm:MODEL@random`` is random init. ViTs are built with ``dynamic_img_size`` so any input
side works (the position embedding is interpolated), as the size sweeps need.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import torch
from torch import nn

from transferlab.data.transforms import INTERPOLATIONS, ImageTransform
from transferlab.errors import TransferlabError, options_hint
from transferlab.models.backbone import Backbone, WeightSpec
from transferlab.models.weights import WEIGHTS_DIR_ENV, WeightsNotFoundError, load_exact

# Top-level children that belong to forward_head, not forward_features, in timm's models.
HEAD_MODULES = (
    "global_pool",
    "fc",
    "head",
    "classifier",
    "head_drop",
    "fc_norm",
    "attn_pool",
    "pre_logits",
    "flatten",
)
# Files a timm repo on the Hugging Face hub holds its weights in, in timm's own order of preference.
HF_FILES = ("model.safetensors", "pytorch_model.bin")


class TimmHead(nn.Module):
    """The model's own ``forward_head`` (pooling, norm, classifier) as a module that owns only the head's
    modules; the model itself is held outside the module tree, so its weights are not registered twice."""

    def __init__(self, model: nn.Module, names: list[str], tokens: bool = False) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(
            {n: getattr(model, n) for n in names if isinstance(getattr(model, n), nn.Module)}
        )
        self._model = (model,)  # a tuple: not a registered child
        self._tokens = tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last unit's output (a map, or tokens) -> logits; pooled features (N, D), which advise's
        LEEP/NCE feed, enter as a 1x1 map or a single token, so that the head's own pooling passes them
        through (exact for average-pooled heads; a ViT's class-token head then reads the token mean)."""
        if x.ndim == 2:
            x = x[:, None, :] if self._tokens else x[:, :, None, None]
        return self._model[0].forward_head(x)


class ViTEmbed(nn.Module):
    """A timm VisionTransformer's patch embedding, class/register tokens and position embedding (its
    ``_pos_embed``, a method rather than a module), then patch dropout and the pre-norm: image -> tokens."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.patch_embed, self.pos_drop = model.patch_embed, model.pos_drop
        self.patch_drop, self.norm_pre = model.patch_drop, model.norm_pre
        for name in ("cls_token", "reg_token", "pos_embed"):  # shared Parameters: registered here too
            if isinstance(getattr(model, name, None), nn.Parameter):
                setattr(self, name, getattr(model, name))
        self._model = (model,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._model[0]._pos_embed(self.patch_embed(x))
        return self.norm_pre(self.patch_drop(x))


def _timm():
    try:
        import timm
    except ImportError:  # a dependency of transferlab, but an environment may lack it
        raise TransferlabError("timm:MODEL backbones need timm: `pip install timm`") from None
    return timm


def _create(arch: str) -> nn.Module:
    """The timm model ``arch`` with random init; ViTs take any input side (``dynamic_img_size``)."""
    timm = _timm()
    try:
        return timm.create_model(arch, pretrained=False, dynamic_img_size=True)
    except TypeError:  # only some families take dynamic_img_size
        return timm.create_model(arch, pretrained=False)


def _flat_children(model: nn.Module, features: set[str]) -> list[tuple[str, nn.Module]]:
    """Top-level children in order, a container expanded one level when a feature module lies inside it."""
    out = []
    for name, child in model.named_children():
        if any(f.startswith(f"{name}.") for f in features):
            out += [(f"{name}.{sub}", module) for sub, module in child.named_children()]
        else:
            out.append((name, child))
    return out


def carve(model: nn.Module, arch: str) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """(units, head module names) of a timm model, as described in the module header."""
    timm = _timm()
    features = [f["module"] for f in getattr(model, "feature_info", None) or []]
    if not features:
        raise TransferlabError(
            f"timm model {arch!r} has no feature_info, so its stages are unknown; choose a "
            "model that supports features_only (timm.list_models(...))"
        )
    flat = _flat_children(model, set(features))
    if isinstance(model, timm.models.vision_transformer.VisionTransformer):
        consumed = {"patch_embed", "pos_drop", "patch_drop", "norm_pre"}
        flat = [("embed", ViTEmbed(model))] + [(n, m) for n, m in flat if n not in consumed]
    units, current, head = [], [], []
    for name, module in flat:
        if name in HEAD_MODULES:
            head.append(name)
            continue
        current.append(module)
        if name in features:
            units.append((name.replace(".", "_"), current))
            current = []
    if not units:
        raise TransferlabError(
            f"timm model {arch!r}: none of its feature modules ({', '.join(features)}) is a "
            "direct stage of the model; it is not supported as timm:MODEL"
        )
    units[-1][1].extend(current)  # modules after the last stage and before the head (conv_head, norm)
    units = [(name, modules[0] if len(modules) == 1 else nn.Sequential(*modules)) for name, modules in units]
    covered = {id(p) for _, m in units for p in m.parameters()}
    covered |= {id(p) for n in head for p in getattr(model, n).parameters()}
    stray = [n for n, p in model.named_parameters() if id(p) not in covered]
    if stray:
        raise TransferlabError(
            f"timm model {arch!r} is not a plain sequence of stages (parameters outside every "
            f"stage: {', '.join(stray[:4])}); it is not supported as timm:MODEL"
        )
    return units, head


def _load(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    # timm's per-family checkpoint filter adapts other layouts (original ViT, ConvNeXt releases) and passes
    # timm-layout files through; the load is then exact, so a mismatch names the keys.
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, model)
    load_exact(model, state, origin)


def build(arch: str, name: str, spec: WeightSpec, state: dict[str, torch.Tensor] | None) -> Backbone:
    """The Backbone of timm model ``arch``, with ``state`` (timm layout) loaded when given."""
    model = _create(arch)
    if state is not None:
        _load(model, state, f"the weight file of {name} (timm layout)")
    units, head = carve(model, arch)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    tokens = isinstance(model, _timm().models.vision_transformer.VisionTransformer)
    return Backbone(name, units, TimmHead(model, head, tokens), int(model.num_features), num_classes, spec)


def _transform(cfg) -> ImageTransform:
    """The pretrained config's preprocessing (timm's defaults when the model has no config)."""
    side = int((cfg.input_size if cfg is not None else (3, 224, 224))[-1])
    crop_pct = float(getattr(cfg, "crop_pct", None) or 0.875)
    interpolation = getattr(cfg, "interpolation", None) or "bicubic"
    mean = tuple(getattr(cfg, "mean", None) or (0.485, 0.456, 0.406))
    std = tuple(getattr(cfg, "std", None) or (0.229, 0.224, 0.225))
    if len(mean) == 1:  # single-channel configs: the images are repeated to RGB before normalising
        mean, std = mean * 3, std * 3
    resize = max(side, int(math.floor(side / crop_pct)))
    return ImageTransform(
        resize, side, mean, std, interpolation if interpolation in INTERPOLATIONS else "bicubic"
    )


def hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def locate_pretrained(model_name: str, cfg) -> Path:
    """The pretrained file of ``model_name`` on this machine (never downloaded), or WeightsNotFoundError."""
    searched = []
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        files = ([cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else []) + list(HF_FILES)
        for file in files:
            found = try_to_load_from_cache(repo_id=hub_id, filename=file)
            if isinstance(found, str):
                return Path(found)
        searched.append(f"{hf_cache_dir()}/models--{hub_id.replace('/', '--')}")
    url = getattr(cfg, "url", None)
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if path.suffix in (".pth", ".bin", ".safetensors") and path.is_file():
            return path
        searched.append(str(path))
    full = f"{cfg.architecture}.{cfg.tag}" if getattr(cfg, "tag", None) else model_name
    raise WeightsNotFoundError(
        f"timm:{model_name}: pretrained weights {full} are not on this machine (searched {', '.join(searched)}). "
        f"On a connected machine run `python -c \"import timm; timm.create_model('{full}', pretrained=True)\"` and "
        f"copy its Hugging Face cache folder (models--{(hub_id or '').replace('/', '--')}) into {hf_cache_dir()} "
        f"(or $HF_HUB_CACHE) here; or give a state_dict file: timm:{model_name}@PATH (weights = PATH); "
        f"timm:{model_name}@random is random init. (${WEIGHTS_DIR_ENV} is for the registered names.)"
    )


@functools.lru_cache(maxsize=128)
def timm_entry(model_name: str):
    """The BackboneEntry of ``timm:model_name`` (an architecture, optionally with a pretrained tag)."""
    from transferlab.models.registry import BackboneEntry

    timm = _timm()
    if not timm.is_model(model_name):
        arch = timm.models.split_model_name_tag(model_name)[0]
        known = timm.list_models()
        raise TransferlabError(
            f"timm has no model {model_name!r}"
            f"{options_hint(arch, known, limit=5).split('; valid:')[0]}; list them with "
            "`python -c \"import timm; print(timm.list_models('convnext*'))\"`"
        )
    arch = timm.models.split_model_name_tag(model_name)[0]
    cfg = timm.models.get_pretrained_cfg(model_name)
    transform = _transform(cfg)
    has_weights = cfg is not None and bool(getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None))
    name = f"timm:{model_name}"
    if has_weights:
        full = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else model_name
        spec = WeightSpec(
            source=f"timm {full} ({cfg.hf_hub_id or cfg.url})",
            license=cfg.license or "see the model card",
            transform=transform,
            file=f"{cfg.hf_hub_id or full}/{HF_FILES[0]}",
            url=cfg.url or "",
            obtain=f"python -c \"import timm; timm.create_model('{full}', pretrained=True)\" on a connected machine",
        )
    else:
        spec = WeightSpec(
            source=f"random init (timm {model_name} has no pretrained weights)",
            license="n/a",
            transform=transform,
        )

    def builder(state, arch=arch, name=name, spec=spec) -> Backbone:
        return build(arch, name, spec, state)

    locate = functools.partial(locate_pretrained, model_name, cfg) if has_weights else None
    return BackboneEntry(name, builder, spec, f"timm {model_name}, {transform.crop} px", locate)
