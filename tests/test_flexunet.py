import keras
import numpy as np
import pytest

from flexseg.config import load_experiment
from flexseg.model.flexunet import (
    build_flexunet,
    build_from_experiment,
    dilation_schedule,
    kernel_schedule,
)
from flexseg.model.store import MODEL_FILE, inference_view, load_model, save_model
from tests.conftest import REPO


def test_schedules_shrink_to_their_floor():
    assert kernel_schedule(9, 8) == [9, 7, 5, 3, 3, 3, 3, 3]
    assert kernel_schedule(11, 3) == [11, 9, 7]
    assert dilation_schedule(3, 5) == [3, 2, 1, 1, 1]


@pytest.mark.parametrize(
    "experiment, params",
    [("nbm.yaml", 124_996_866), ("kneebones3dify.yaml", 126_809_218)],  # measured from the seed's code
)
def test_parameter_count_equals_the_seeds(experiment, params):
    model = build_from_experiment(load_experiment(REPO / "experiments" / experiment))
    assert model.count_params() == params
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    del model
    keras.backend.clear_session()


def test_output_is_a_float32_probability_map():
    model = build_flexunet(
        width=32,
        height=16,
        channels=1,
        num_classes=4,
        base_filters=4,
        num_layers=3,
        dropout_rate=0.1,
        normalization=True,
        dilation=(2, 2),
    )
    probs = np.asarray(model.predict_on_batch(np.random.rand(2, 16, 32, 1).astype(np.float32) * 255))
    assert probs.shape == (2, 16, 32, 4) and probs.dtype == np.float32
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == pytest.approx([0.0, 0.1, 0.2, 0.1, 0.0])  # encoder levels 0..2, decoder 1, 0


def _has_optimizer_state(path) -> bool:
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
        return "optimizer" in h5


def test_saved_model_is_weights_only_and_loads_in_safe_mode(tmp_path):
    model = build_flexunet(width=16, height=16, channels=3, num_classes=2, base_filters=4, num_layers=3)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.rand(2, 16, 16, 3).astype(np.float32) * 255
    model.fit(x, np.eye(2, dtype=np.float32)[np.random.randint(0, 2, (2, 16, 16))], verbose=0)
    save_model(inference_view(model), tmp_path)
    loaded = load_model(tmp_path)
    assert not _has_optimizer_state(tmp_path / MODEL_FILE)
    model.save(tmp_path / "compiled.keras")  # the check would see it if it were there
    assert _has_optimizer_state(tmp_path / "compiled.keras")
    (tmp_path / "compiled.keras").unlink()
    assert np.allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [MODEL_FILE]  # no temporary file left behind
