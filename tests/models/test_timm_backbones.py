"""timm:MODEL backbones (units from feature_info, intermediate layers, the model's preprocessing), NAME@random
and NAME@PATH / weights = PATH, on a ResNet, a ConvNeXt and a ViT at 32 px (random init: nothing is fetched)."""

from __future__ import annotations

import pytest
import torch

from transferlab.errors import TransferlabError
from transferlab.models.registry import create_backbone, get_backbone_entry
from transferlab.models.weights import WeightsNotFoundError
from transferlab.runs import RunSpec

timm = pytest.importorskip("timm")

# (timm model, its feature_info stages as units, feature dim)
ARCHS = [
    ("resnet10t", ["act1", "layer1", "layer2", "layer3", "layer4"], 512),
    ("convnext_atto", ["stages_0", "stages_1", "stages_2", "stages_3"], 320),
    ("vit_tiny_patch16_224", [f"blocks_{i}" for i in range(12)], 192),
]


@pytest.mark.parametrize(("arch", "units", "dim"), ARCHS)
def test_units_features_and_logits_are_timms(arch, units, dim):
    backbone = create_backbone(f"timm:{arch}@random").eval()
    model = timm.create_model(arch, pretrained=False, **({"dynamic_img_size": True} if "vit" in arch else {}))
    model.load_state_dict(_timm_state(backbone))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    assert backbone.freezable_units() == units
    with torch.no_grad():
        # the last unit is timm's forward_features; the original classifier is timm's forward_head
        torch.testing.assert_close(backbone.run_units(x, len(units)), model.forward_features(x))
        torch.testing.assert_close(backbone(x), model(x))
        assert backbone.forward_features(x).shape == (2, dim) == (2, backbone.num_features)
        if "vit" not in arch:  # pooled features (advise's LEEP/NCE input) through the head: the same logits
            torch.testing.assert_close(backbone.classifier(backbone.forward_features(x)), model(x))
        mid = backbone.forward_features(x, layer=2)  # an intermediate stage, pooled
        assert mid.ndim == 2 and mid.shape[0] == 2
    cfg = timm.models.get_pretrained_cfg(arch)
    assert backbone.spec.input_size == cfg.input_size[-1] and backbone.spec.mean == tuple(cfg.mean)
    assert backbone.freeze(1).frozen_depth == 1
    assert not any(p.requires_grad for p in backbone.units[units[0]].parameters())
    backbone.reset_classifier(5)
    assert backbone(x).shape == (2, 5)


def _timm_state(backbone):
    """The timm model inside a timm Backbone (its head holds it outside the module tree)."""
    return backbone.classifier._model[0].state_dict()


@pytest.mark.parametrize(("arch", "units", "dim"), ARCHS)
def test_saved_state_dict_round_trips(tmp_path, arch, units, dim):
    """A timm-layout state_dict (torch.save(model.state_dict())) and a Backbone-layout one load exactly."""
    source = create_backbone(f"timm:{arch}@random").eval()
    native = tmp_path / "native.pth"
    torch.save(_timm_state(source), native)
    x = torch.randn(1, 3, 32, 32)
    for loaded in (create_backbone(f"timm:{arch}", weights=native), create_backbone(f"timm:{arch}@{native}")):
        assert loaded.weights_file == str(native)
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(x), source(x))
    own = tmp_path / "own.pth"
    source.reset_classifier(3)  # a fine-tuned Backbone: its head is sized as saved
    torch.save(source.state_dict(), own)
    loaded = create_backbone(f"timm:{arch}@{own}").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x))


def test_pretrained_from_the_hugging_face_cache(tmp_path, monkeypatch):
    """timm:NAME finds its weights where timm.create_model(pretrained=True) leaves them, offline."""
    from safetensors.torch import save_file

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    cfg = timm.models.get_pretrained_cfg("resnet10t")
    repo = cache / f"models--{cfg.hf_hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    reference = timm.create_model("resnet10t").eval()
    save_file(reference.state_dict(), repo / "snapshots" / "abc123" / "model.safetensors")
    from transferlab.models import timm_backbones

    timm_backbones.timm_entry.cache_clear()
    entry = get_backbone_entry("timm:resnet10t")
    assert entry.pretrained and entry.weights_present()
    backbone = create_backbone("timm:resnet10t").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), reference(x))


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    with pytest.raises(
        WeightsNotFoundError, match=r"timm.create_model\('convnext_atto.d2_in1k', pretrained=True\)"
    ):
        create_backbone("timm:convnext_atto")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        create_backbone(f"timm:convnext_atto@{tmp_path / 'nope.pth'}")


def test_names_and_errors():
    with pytest.raises(TransferlabError, match="timm has no model 'resnet_nope'"):
        get_backbone_entry("timm:resnet_nope")
    with pytest.raises(TransferlabError, match="unknown backbone 'cifar_cnnn'"):
        get_backbone_entry("cifar_cnnn@random")
    with pytest.raises(TransferlabError, match="ends in '@'"):
        get_backbone_entry("cifar_cnn@")
    random = get_backbone_entry("efficientnet_lite0.in1k@random")
    assert not random.pretrained and random.spec.input_size == 224


def test_weights_in_run_specs(tmp_path):
    """weights = PATH is folded into the backbone name (absolute), taken only by strategies that start from
    weights, and the study's precheck finds a missing file before any run."""
    path = tmp_path / "w.pth"
    spec = RunSpec(strategy="extract", dataset="digits", backbone="cifar_cnn", weights=str(path)).resolved()
    assert spec.backbone == f"cifar_cnn@{path}" and spec.weights is None
    assert RunSpec.from_dict(spec.to_dict()).resolved() == spec  # idempotent
    with pytest.raises(TransferlabError, match="weights is not a setting of strategy 'scratch'"):
        RunSpec(strategy="scratch", dataset="digits", weights=str(path))
    with pytest.raises(TransferlabError, match="both name weights"):
        RunSpec(
            strategy="extract", dataset="digits", backbone=f"cifar_cnn@{path}", weights=str(path)
        ).resolved()


def test_extract_run_with_user_weights(tmp_path, digits):
    """A study arm on a user's weight file: the features are cached by the file's content."""
    from transferlab.strategies import run

    path = tmp_path / "cnn.pth"
    torch.manual_seed(0)
    torch.save(create_backbone("cifar_cnn").state_dict(), path)
    spec = RunSpec(
        strategy="extract",
        dataset="digits",
        backbone="cifar_cnn",
        weights=str(path),
        input_size=16,
        per_class=10,
        test_per_class=10,
    )
    result = run(spec, digits)
    assert result.ok, result.error
    assert result.spec["backbone"] == f"cifar_cnn@{path}" and result.test_accuracy > 0.3


def test_timm_backbone_in_extract_and_finetune_runs(tmp_path, digits):
    """A timm ConvNeXt from a weights file through the strategies: features from an intermediate stage,
    and fine-tuning with its first two stages frozen."""
    from transferlab.strategies import run

    path = tmp_path / "convnext.pth"
    torch.save(_timm_state(create_backbone("timm:convnext_atto@random")), path)
    common = {
        "dataset": "digits",
        "backbone": "timm:convnext_atto",
        "weights": str(path),
        "input_size": 32,
        "per_class": 5,
        "test_per_class": 10,
    }
    extract = run(RunSpec(strategy="extract", layer="stages_2", **common), digits)
    finetune = run(RunSpec(strategy="finetune", frozen=2, steps=3, **common), digits)
    for result in (extract, finetune):
        assert result.ok, result.error
        assert result.spec["backbone"] == f"timm:convnext_atto@{path}" and 0 <= result.test_accuracy <= 1
    assert finetune.hyperparameters["frozen_units"] == ["stages_0", "stages_1"]


def test_advise_ranks_timm_candidates(tmp_path, digits):
    """advise takes timm:NAME@random and timm:NAME@PATH (a weights file) candidates; LEEP/NCE read the
    ImageNet head from pooled features."""
    from transferlab.advise.advisor import advise
    from transferlab.advise.sources import SourceSettings

    path = tmp_path / "resnet.pth"
    torch.save(_timm_state(create_backbone("timm:resnet10t@random")), path)
    names = [f"timm:resnet10t@{path}", "timm:convnext_atto@random"]
    advice = advise(
        digits,
        candidates=names,
        per_class=10,
        target="5,6,7,8,9",
        with_similarity=False,
        settings=SourceSettings(input_size=32, trained_input_size=32),
    )
    scored = {c.name: c for c in advice.candidates}
    assert set(scored) == set(names)
    assert scored[names[0]].kind == "pretrained" and scored[names[0]].feature_dim == 512
    assert all(torch.isfinite(torch.tensor(c.scores["leep"])) for c in advice.candidates)


def test_weights_on_the_command_line_and_in_a_study(tmp_path, cli):
    """--weights PATH on `run`; weights = PATH in a study, whose precheck names a missing file before any run."""
    import json

    from transferlab.study.runner import run_study

    path = tmp_path / "cnn.pth"
    torch.save(create_backbone("cifar_cnn").state_dict(), path)
    code, out, err = cli(
        "run",
        "--dataset",
        "digits",
        "--strategy",
        "extract",
        "--backbone",
        "cifar_cnn",
        "--weights",
        str(path),
        "--input-size",
        "16",
        "--per-class",
        "5",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["spec"]["backbone"] == f"cifar_cnn@{path}"
    code, out, err = cli(
        "run",
        "--dataset",
        "digits",
        "--strategy",
        "extract",
        "--backbone",
        "cifar_cnn",
        "--weights",
        str(tmp_path / "gone.pth"),
        "--input-size",
        "16",
        "--per-class",
        "5",
    )
    assert code == 2 and "gone.pth does not exist" in err and len(err.strip().splitlines()) == 1
    spec = tmp_path / "s.toml"
    spec.write_text(
        f'name = "w"\n[base]\ndataset = "digits"\nper_class = 5\ninput_size = 16\n'
        f'[[runs]]\nstrategy = "extract"\nbackbone = "cifar_cnn"\nweights = "{tmp_path / "gone.pth"}"\n'
    )
    with pytest.raises(WeightsNotFoundError, match="gone.pth does not exist"):
        run_study(spec, tmp_path / "study", quiet=True, report=False)
    assert not (tmp_path / "study" / "study.sqlite").exists()  # refused before the store was made
