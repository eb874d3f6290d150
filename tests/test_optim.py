"""zoo.optim: learning-rate schedules at exact steps, and optimizers built from a recipe's train section."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.config import OptimizerConfig, ScheduleConfig, TrainConfig
from zoo.optim import NO_DECAY, WarmupSchedule, build_optimizer, build_schedule


def train_config(epochs=10, optimizer=None, **schedule):
    return TrainConfig(epochs=epochs, optimizer=OptimizerConfig(**(optimizer or {})),
                       schedule=ScheduleConfig(**schedule))


def lr_at(schedule, steps):
    """The schedule at each step, evaluated one step at a time (as the optimizer does)."""
    return np.array([float(schedule(step)) for step in steps])


# ---------------------------------------------------------------- schedules


def test_constant_schedule():
    schedule = build_schedule(train_config(optimizer={"learning_rate": 0.05}), steps_per_epoch=20)
    assert schedule.total_steps == 200
    np.testing.assert_allclose(lr_at(schedule, [0, 1, 100, 199, 500]), 0.05, rtol=1e-6)


def test_constant_schedule_linear_warmup():
    # 1.5 epochs of 20 steps: 30 warmup steps, lr * (step + 1) / 30.
    schedule = build_schedule(train_config(optimizer={"learning_rate": 0.3}, warmup_epochs=1.5),
                              steps_per_epoch=20)
    assert schedule.warmup_steps == 30
    np.testing.assert_allclose(lr_at(schedule, [0, 14, 28, 29, 30, 199]),
                               [0.01, 0.15, 0.29, 0.3, 0.3, 0.3], rtol=1e-5)
    warmup = lr_at(schedule, range(31))
    assert np.all(np.diff(warmup[:30]) > 0)  # strictly increasing during warmup
    np.testing.assert_allclose(np.diff(warmup[:30]), 0.01, rtol=1e-4)  # linearly


def test_cosine_schedule_without_warmup():
    schedule = build_schedule(train_config(epochs=4, optimizer={"learning_rate": 0.4}, name="cosine",
                                           min_learning_rate=0.02), steps_per_epoch=25)
    total = schedule.total_steps
    assert total == 100
    np.testing.assert_allclose(lr_at(schedule, [0, 25, 50, 75, 100, 150]),
                               [0.4, 0.02 + 0.38 * (1 + math.cos(math.pi / 4)) / 2, 0.21,
                                0.02 + 0.38 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.02, 0.02], rtol=1e-5)
    values = lr_at(schedule, range(total + 1))
    assert np.all(np.diff(values) < 0)  # strictly decreasing from lr to min_learning_rate
    # The last optimizer step (step total - 1) is one step short of the minimum.
    assert 0.02 < values[total - 1] < 0.02 + 1e-3


def test_cosine_schedule_with_warmup():
    # 10 epochs of 10 steps, 2 warmup epochs: warmup to step 19, then a cosine over 80 steps.
    schedule = build_schedule(train_config(optimizer={"learning_rate": 1.0}, name="cosine",
                                           warmup_epochs=2), steps_per_epoch=10)
    assert (schedule.total_steps, schedule.warmup_steps) == (100, 20)
    np.testing.assert_allclose(lr_at(schedule, [0, 9, 19, 20, 60, 100]),
                               [0.05, 0.5, 1.0, 1.0, 0.5, 0.0], rtol=1e-5, atol=1e-7)
    values = lr_at(schedule, range(101))
    assert np.all(np.diff(values[:20]) > 0)
    assert np.all(np.diff(values[20:]) < 0)
    assert values.argmax() in (19, 20)  # the peak is the end of warmup


def test_step_schedule_decays_at_each_milestone():
    # Milestones at epochs 3 and 6.5 of 100 steps: steps 300 and 650.
    schedule = build_schedule(train_config(optimizer={"learning_rate": 0.2}, name="step",
                                           milestones=[3, 6.5], decay_rate=0.5), steps_per_epoch=100)
    assert schedule.boundaries == [300, 650]
    np.testing.assert_allclose(lr_at(schedule, [0, 299, 300, 649, 650, 999, 5000]),
                               [0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05], rtol=1e-6)
    values = lr_at(schedule, range(0, 1000, 10))
    assert np.all(np.diff(values) <= 0)  # non-increasing
    assert len(np.unique(values)) == 3


def test_step_schedule_with_warmup_and_default_decay():
    schedule = build_schedule(train_config(optimizer={"learning_rate": 1.0}, name="step", milestones=[1],
                                           warmup_epochs=2), steps_per_epoch=5)
    # Warmup over 10 steps overlaps the milestone at step 5: both factors apply.
    np.testing.assert_allclose(lr_at(schedule, [0, 4, 5, 9, 10, 49]),
                               [0.1, 0.5, 0.06, 0.1, 0.1, 0.1], rtol=1e-5)


def test_step_schedule_without_milestones_is_constant():
    schedule = build_schedule(train_config(optimizer={"learning_rate": 0.1}, name="step"), steps_per_epoch=10)
    np.testing.assert_allclose(lr_at(schedule, [0, 50, 99]), 0.1, rtol=1e-6)


def test_schedule_takes_integer_steps_and_vectors():
    schedule = WarmupSchedule("cosine", 1.0, total_steps=10, warmup_steps=2)
    steps = np.arange(12)
    vector = schedule(tf.constant(steps, tf.int64)).numpy()
    assert vector.dtype == np.float32 and vector.shape == (12,)
    np.testing.assert_allclose(vector, lr_at(schedule, steps), rtol=1e-6)
    # Inside a graph, as the optimizer calls it on its int64 `iterations`.
    graph = tf.function(schedule)
    np.testing.assert_allclose(float(graph(tf.constant(7, tf.int64))), float(schedule(7)), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [
    {"name": "constant", "learning_rate": 0.1, "total_steps": 50, "warmup_steps": 5},
    {"name": "cosine", "learning_rate": 0.4, "total_steps": 50, "warmup_steps": 10, "min_learning_rate": 0.01},
    {"name": "step", "learning_rate": 0.3, "total_steps": 50, "boundaries": [10, 30], "decay_rate": 0.2},
], ids=lambda k: k["name"])
def test_schedule_config_round_trip(kwargs):
    schedule = WarmupSchedule(**kwargs)
    config = schedule.get_config()
    assert config == {"warmup_steps": 0, "boundaries": [], "decay_rate": 0.1, "min_learning_rate": 0.0,
                      **kwargs}
    steps = range(0, 60, 3)
    expected = lr_at(schedule, steps)
    np.testing.assert_array_equal(lr_at(WarmupSchedule.from_config(config), steps), expected)
    # And through Keras serialization, as a saved model's optimizer is.
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupSchedule)
    np.testing.assert_array_equal(lr_at(restored, steps), expected)


# ---------------------------------------------------------------- optimizers


def test_build_optimizer_sgd():
    train = train_config(optimizer={"name": "sgd", "learning_rate": 0.2, "momentum": 0.8, "nesterov": True,
                                    "clipnorm": 2.5}, name="cosine")
    optimizer = build_optimizer(train, steps_per_epoch=10)
    assert type(optimizer) is keras.optimizers.SGD
    assert optimizer.momentum == pytest.approx(0.8) and optimizer.nesterov is True
    assert optimizer.clipnorm == pytest.approx(2.5)
    assert optimizer.weight_decay is None
    # The optimizer's learning rate follows the schedule at its iteration count.
    schedule = build_schedule(train, 10)
    for step in (0, 50, 99):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(float(schedule(step)), rel=1e-6)
    assert float(optimizer.learning_rate) < 0.01


def test_build_optimizer_sgd_defaults_no_nesterov_no_clipping():
    optimizer = build_optimizer(train_config(optimizer={"momentum": 0.5}), steps_per_epoch=10)
    assert type(optimizer) is keras.optimizers.SGD
    assert optimizer.momentum == pytest.approx(0.5) and optimizer.nesterov is False
    assert optimizer.clipnorm is None


def test_build_optimizer_adam_and_adamw():
    adam = build_optimizer(train_config(optimizer={"name": "adam", "learning_rate": 1e-3, "weight_decay": 0.01}),
                           steps_per_epoch=10)
    assert type(adam) is keras.optimizers.Adam
    assert adam.weight_decay == pytest.approx(0.01)
    adamw = build_optimizer(train_config(optimizer={"name": "adamw", "learning_rate": 1e-3, "weight_decay": 0.05,
                                                    "clipnorm": 1.0}), steps_per_epoch=10)
    assert type(adamw) is keras.optimizers.AdamW
    assert adamw.weight_decay == pytest.approx(0.05) and adamw.clipnorm == pytest.approx(1.0)
    optimizer = build_optimizer(train_config(optimizer={"name": "adamw", "weight_decay": 0.0}), 10)
    assert type(optimizer) is keras.optimizers.AdamW and optimizer.weight_decay == 0.0


def test_build_optimizer_from_a_loaded_recipe():
    recipe = zoo.load_recipe({"task": "classification", "model": "digits_cnn", "data": {"name": "mnist"}, "train": {
        "epochs": 3, "optimizer": {"name": "adamw", "learning_rate": 0.002, "weight_decay": 0.1},
        "schedule": {"name": "step", "milestones": [2], "decay_rate": 0.5, "warmup_epochs": 0}}})
    optimizer = build_optimizer(recipe.train, steps_per_epoch=7)
    assert type(optimizer) is keras.optimizers.AdamW
    for step, lr in [(0, 0.002), (13, 0.002), (14, 0.001), (20, 0.001)]:
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(lr, rel=1e-6)


def tiny_model():
    """Dense (kernel, bias), BatchNormalization and LayerNormalization (gamma, beta), Embedding."""
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.LayerNormalization()(x)
    tokens = keras.Input((2,), dtype="int32")
    e = keras.layers.Flatten()(keras.layers.Embedding(5, 2)(tokens))
    model = keras.Model([inputs, tokens], keras.layers.Concatenate()([x, e]))
    for v in model.trainable_variables:
        v.assign(np.full(v.shape, 2.0, np.float32))
    return model


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_weight_decay_skips_biases_and_normalization_parameters(name):
    model = tiny_model()
    names = sorted(v.name for v in model.trainable_variables)
    assert names == ["beta", "beta", "bias", "embeddings", "gamma", "gamma", "kernel"]
    # Constant lr 0.1 and zero gradients: only decoupled weight decay moves a variable, by lr * wd.
    train = train_config(optimizer={"name": name, "learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.5})
    optimizer = build_optimizer(train, steps_per_epoch=10)
    variables = model.trainable_variables
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])
    for v in variables:
        expected = 2.0 if v.name in NO_DECAY else 2.0 * (1 - 0.1 * 0.5)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, err_msg=v.path)


def test_weight_decay_follows_the_warmup_learning_rate():
    model = tiny_model()
    # Warmup over 10 steps: the first step's lr is 0.1 / 10, so the kernel shrinks by 0.01 * 0.5.
    train = train_config(optimizer={"learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.5}, warmup_epochs=1)
    optimizer = build_optimizer(train, steps_per_epoch=10)
    kernel = next(v for v in model.trainable_variables if v.name == "kernel")
    optimizer.apply_gradients([(keras.ops.zeros_like(kernel), kernel)])
    np.testing.assert_allclose(kernel.numpy(), 2.0 * (1 - 0.01 * 0.5), rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_no_weight_decay_by_default(name):
    model = tiny_model()
    optimizer = build_optimizer(train_config(optimizer={"name": name, "learning_rate": 0.1}), 10)
    assert optimizer.weight_decay is None
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in model.trainable_variables])
    for v in model.trainable_variables:
        np.testing.assert_array_equal(v.numpy(), 2.0)


def test_sgd_momentum_and_nesterov_change_the_steps():
    """Two steps with gradient 1 at lr 0.1: plain 0.2, momentum 0.9 adds 0.09, Nesterov 0.461."""
    moved = {}
    for label, opt in [("plain", {"momentum": 0.0}), ("momentum", {"momentum": 0.9}),
                       ("nesterov", {"momentum": 0.9, "nesterov": True})]:
        optimizer = build_optimizer(train_config(optimizer={"learning_rate": 0.1, **opt}), 10)
        v = keras.Variable(np.zeros(2, np.float32), name="kernel")
        for _ in range(2):
            optimizer.apply_gradients([(keras.ops.ones_like(v), v)])
        moved[label] = -float(v.numpy()[0])
    assert moved == pytest.approx({"plain": 0.2, "momentum": 0.29, "nesterov": 0.461}, rel=1e-5)


def test_clipnorm_limits_the_update():
    optimizer = build_optimizer(train_config(optimizer={"learning_rate": 1.0, "momentum": 0.0, "clipnorm": 0.5}), 10)
    v = keras.Variable(np.zeros(2, np.float32), name="kernel")
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array([3.0, 4.0], np.float32)), v)])
    np.testing.assert_allclose(v.numpy(), [-0.3, -0.4], rtol=1e-5)  # gradient of norm 5 clipped to 0.5
