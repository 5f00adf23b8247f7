"""One real training run on real MNIST: racecar table 9, Std vs RR³."""

import keras
import numpy as np
import pytest

import zoo
from keras_reversible import data
from keras_reversible.data.mnist import digits_dataset

TRAIN_IMAGES, TEST_IMAGES = 12000, 2000


@pytest.fixture(scope="module")
def mnist(data_root):
    """12,000 training image-steps (one epoch of 12,000 full-data images, or four
    of the 3,000 in tests/data) and up to 2,000 test images."""
    x, y = data.load_mnist_arrays("train", data_dir=data_root / "mnist")
    n = min(TRAIN_IMAGES, len(x))
    train = digits_dataset(x, y, "train", 64, n, True, 0, False)
    x_test, y_test = data.load_mnist_arrays("test", data_dir=data_root / "mnist")
    x_test = x_test[:TEST_IMAGES, ..., None].astype("float32") / 255.0
    return train, TRAIN_IMAGES // n, x_test, y_test[:TEST_IMAGES].astype("int32")


def _train(depth, mnist):
    train, epochs, x_test, y_test = mnist
    keras.utils.set_random_seed(0)
    # Paper settings (tables 9-10): λ = 1e-5 with l2_loss, Adam lr 1e-3, batch 64.
    model = zoo.racecar_mnist_cnn(depth=depth)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(train, epochs=epochs, verbose=0).history
    accuracy = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    error = float(np.mean((model.reconstruct(x_test) - x_test) ** 2))
    return history, accuracy, error


def test_std_vs_rr3_one_short_epoch(mnist):
    """12,000 steps' worth of real training images, tested on up to 2,000.

    Measured here: both ≈ 0.80 test accuracy; the input-reconstruction MSE
    of Std is ≈ 430 (its reverse pass blows up) and of RR³ ≈ 0.056.
    """
    std_hist, std_acc, std_err = _train(0, mnist)
    rr_hist, rr_acc, rr_err = _train(3, mnist)
    assert std_acc > 0.7 and rr_acc > 0.7, (std_acc, rr_acc)
    assert rr_err * 5 < std_err, (rr_err, std_err)
    assert rr_err < 0.1
    assert set(std_hist["racecar_loss"]) == {0.0} and min(rr_hist["racecar_loss"]) > 0
