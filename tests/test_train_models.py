"""Model registry, custom layers, save/load and weights handling (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ModelError
from train.models import build_model, list_models, load_keras_model, model_entry

keras = pytest.importorskip("keras")

# keras.applications.ResNet152(include_top=False, weights=None): the 60,419,944 parameters of
# the documented ImageNet model minus its 2048 x 1000 + 1000 top.
RESNET152_NO_TOP_PARAMS = 60_419_944 - (2048 * 1000 + 1000)


@pytest.fixture(autouse=True)
def _few_threads():
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(2)
    except RuntimeError:  # already initialised by an earlier test
        pass


@pytest.fixture(scope="module")
def tiny():
    return build_model("tiny", 3)


def random_tiles(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 256, 256, 1), dtype=np.uint8)


def test_registry_lists_the_architectures():
    names = list_models()
    resnets = [name for name in names if name.startswith("resnet")]
    assert resnets == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]  # natural
    assert "tiny" in names


def test_unknown_architecture_is_a_one_line_error():
    with pytest.raises(ModelError, match="unknown architecture 'resnet9'; choose one of") as err:
        build_model("resnet9", 3)
    assert "\n" not in str(err.value)


def test_tiny_has_the_project_input_and_output(tiny):
    (inp,) = tiny.inputs
    assert inp.name == "image" and inp.dtype == "uint8" and tuple(inp.shape) == (None, 256, 256, 1)
    assert tiny.output_names == ["probabilities"]
    assert tiny.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    probs = tiny.predict_on_batch(random_tiles(4))
    assert probs.shape == (4, 3) and probs.dtype == np.float32
    assert np.all((probs > 0) & (probs < 1))


def test_tiny_parameter_count_is_the_listed_one(tiny):
    assert model_entry("tiny").parameters == tiny.count_params()


def test_class_count_follows_the_argument():
    assert build_model("tiny", 5).output_shape == (None, 5)
    with pytest.raises(ModelError, match="at least one class"):
        build_model("tiny", 0)


def test_saved_model_reloads_with_identical_outputs(tiny, tmp_path):
    path = tmp_path / "model.keras"
    tiny.save(path)
    loaded = load_keras_model(path)
    tiles = random_tiles(3, seed=1)
    np.testing.assert_array_equal(loaded.predict_on_batch(tiles), tiny.predict_on_batch(tiles))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in tiny.layers]


def test_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="Keras model not found"):
        load_keras_model(tmp_path / "nope.keras")


def test_gray_to_rgb_config_round_trip():
    from train.models.layers import GrayToRGB

    layer = GrayToRGB(3, name="gray")
    clone = GrayToRGB.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, GrayToRGB) and restored.channels == 3
    pixels = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
    out = np.asarray(restored(pixels))
    assert out.shape == (2, 4, 4, 3) and out.dtype == np.float32
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], pixels[..., 0].astype(np.float32))


def test_rescaling_constants_survive_saving(tmp_path):
    """The caffe channel means of the ResNets are stored in the model, not recomputed."""
    model = build_model("resnet50", 3)
    path = tmp_path / "r50.keras"
    model.save(path)
    loaded = load_keras_model(path)
    offset = loaded.get_layer("normalize").get_config()["offset"]
    np.testing.assert_allclose(offset, [-103.939, -116.779, -123.68])
    tiles = random_tiles(1, seed=2)
    np.testing.assert_allclose(
        loaded.predict_on_batch(tiles), model.predict_on_batch(tiles), rtol=0, atol=1e-6
    )


def test_resnet152_shape_and_parameter_count():
    model = build_model("resnet152", 3, weights="none")
    assert model.input_shape == (None, 256, 256, 1) and model.output_shape == (None, 3)
    backbone = model.get_layer("resnet152")
    assert backbone.count_params() == RESNET152_NO_TOP_PARAMS
    head = 2048 * 3 + 3
    assert model.count_params() == RESNET152_NO_TOP_PARAMS + head
    assert model_entry("resnet152").parameters == model.count_params()  # as `train models` lists
    assert model.get_layer("pool").input.shape == (None, 8, 8, 2048)  # Grad-CAM's feature maps


# He et al.'s ResNet-18/34 with a 1000-class top, as torchvision counts them (BatchNorm's moving
# statistics are buffers there, not parameters).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672}
# BatchNorm channels of the basic-block ResNets (stem, blocks, projections).
BN_CHANNELS = {"resnet18": 4_800, "resnet34": 8_512}


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_basic_block_resnets_are_he_et_al(arch):
    """Same layers as the published ResNet-18/34, with a gray stem and the project's head."""
    model = build_model(arch, 3, weights="none")
    assert model.input_shape == (None, 256, 256, 1) and model.output_shape == (None, 3)
    no_top = TORCHVISION_PARAMS[arch] - (512 * 1000 + 1000)
    gray_stem = -7 * 7 * 2 * 64  # one input channel instead of three
    keras_bn_buffers = 2 * BN_CHANNELS[arch]
    head = 512 * 3 + 3
    assert model.count_params() == no_top + gray_stem + keras_bn_buffers + head
    assert model_entry(arch).parameters == model.count_params()  # as `train models` lists
    assert model.get_layer("pool").input.shape == (None, 8, 8, 512)  # the CAM's feature maps
    probs = model.predict_on_batch(random_tiles(2, seed=3))
    assert probs.shape == (2, 3) and np.all((probs > 0) & (probs < 1))


def test_basic_block_resnets_have_no_imagenet_weights():
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_model("resnet18", 3, weights="imagenet")


def test_imagenet_download_failure_is_one_clear_line(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ModelError, match="cannot download the ImageNet weights of ResNet50") as err:
        build_model("resnet50", 3, weights="imagenet")
    assert "\n" not in str(err.value) and "--weights none" in str(err.value)


def test_tiny_has_no_imagenet_weights():
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_model("tiny", 3, weights="imagenet")


def test_checkpoint_weights_are_loaded(tiny, tmp_path):
    path = tmp_path / "ckpt.keras"
    tiny.save(path)
    warm = build_model("tiny", 3, weights=path)
    for a, b in zip(warm.get_weights(), tiny.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="checkpoint does not fit") as err:
        build_model("tiny", 2, weights=path)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="'none', 'imagenet' or an existing Keras checkpoint"):
        build_model("tiny", 3, weights=tmp_path / "missing.keras")


def test_mixed_precision_keeps_the_output_float32():
    policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("tiny", 3)
        assert model.get_layer("stem_conv").compute_dtype == "float16"
        assert model.predict_on_batch(random_tiles(2)).dtype == np.float32
        assert model.outputs[0].dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy(policy)
