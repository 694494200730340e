"""Streaming k-means: MLlib's update rule on hand-computed data, PySpark's streaming
tests ported, a per-point reference on random batches, and the prediction order."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ml_reference import close, kmeans, run_job

from streamio import ConfigurationError, OperatorError
from streamio.ml import StreamingKMeans, StreamingKMeansModel
from streamio.testing import ListSink


def train(km: StreamingKMeans, batches: list[list[list[float]]], **kwargs) -> list:
    """Train on ``batches``; the model after each one."""
    models = []

    def build(points):
        km.train_on(points)
        points.foreach_batch(lambda records: models.append(km.latest_model()))

    from streamio import run

    run(run_job(build, batches, **kwargs), use_uvloop=False)
    return models


# -- the update rule, by hand ------------------------------------------------------


def test_docstring_example_of_pyspark_model():
    """PySpark's StreamingKMeansModel doctest: decay 1 then decay 0."""
    model = StreamingKMeansModel([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0])
    model = model.update([[-0.1, -0.1], [0.1, 0.1], [0.9, 0.9], [1.1, 1.1]], 1.0, "batches")
    assert model.cluster_centers.tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert model.cluster_weights.tolist() == [3.0, 3.0]
    model = model.update([[1.5, 1.5], [0.2, 0.2]], 0.0, "batches")
    assert model.cluster_centers.tolist() == [[0.2, 0.2], [1.5, 1.5]]
    assert model.cluster_weights.tolist() == [1.0, 1.0]
    assert (model.predict([0.2, 0.2]), model.predict([1.5, 1.5])) == (0, 1)


def test_points_raise_the_decay_to_the_batch_size():
    # weight 4 discounted by 0.5 ** 2 = 1; then 1 + 2 points: lambda = 2/3
    model = StreamingKMeansModel([[0.0]], [4.0]).update([[2.0], [2.0]], 0.5, "points")
    assert model.cluster_weights.tolist() == [3.0]
    assert model.cluster_centers[0, 0] == pytest.approx(4.0 / 3.0, abs=1e-15)


def test_an_empty_batch_decays_every_weight_in_batches_but_not_in_points():
    model = StreamingKMeansModel([[0.0], [5.0]], [4.0, 2.0])
    assert model.update([], 0.5, "batches").cluster_weights.tolist() == [2.0, 1.0]
    assert model.update([], 0.5, "points").cluster_weights.tolist() == [4.0, 2.0]
    assert model.update([], 0.5, "batches").cluster_centers.tolist() == [[0.0], [5.0]]


def test_a_dying_cluster_takes_half_of_the_largest():
    # both points go to cluster 0 (weight 2, center 1.5); cluster 1 keeps weight 0
    model = StreamingKMeansModel([[0.0, 3.0], [10.0, 10.0]], [0.0, 0.0])
    model = model.update([[1.0, 3.0], [2.0, 3.0]], 1.0, "batches")
    assert model.cluster_weights.tolist() == [1.0, 1.0]
    assert model.cluster_centers.tolist() == [
        [1.5 + 1.5e-14, 3.0 + 3e-14],
        [1.5 - 1.5e-14, 3.0 - 3e-14],
    ]


def test_ties_go_to_the_first_center():
    model = StreamingKMeansModel([[1.0], [-1.0], [1.0]], [1.0, 1.0, 1.0])
    assert model.predict([0.0]) == 0
    assert model.predict([1.0]) == 0


def test_set_random_centers_draws_as_pyspark_does():
    km = StreamingKMeans(k=3).set_random_centers(dim=2, weight=0.5, seed=7)
    expected = np.random.RandomState(7).randn(3, 2)
    assert km.latest_model().cluster_centers.tolist() == expected.tolist()
    assert km.latest_model().cluster_weights.tolist() == [0.5, 0.5, 0.5]


def test_half_life_halves_a_weight_after_that_many_batches():
    km = StreamingKMeans(k=1).set_half_life(2.0, "batches")
    assert km.decay_factor == math.exp(math.log(0.5) / 2.0)
    km.set_initial_centers([[0.0]], [8.0])
    models = train(km, [[], []])
    assert models[-1].cluster_weights[0] == pytest.approx(4.0, rel=1e-15)
    assert StreamingKMeans(k=1).set_half_life(3, "points").time_unit == "points"


def test_the_model_is_immutable():
    model = StreamingKMeansModel([[0.0]], [1.0])
    with pytest.raises(ValueError):
        model.cluster_centers[0, 0] = 1.0


# -- PySpark's streaming tests, ported -----------------------------------------------


def test_model_params():
    km = StreamingKMeans(k=5).set_decay_factor(0.0)
    assert (km.k, km.decay_factor, km.time_unit) == (5, 0.0, "batches")
    assert km.latest_model() is None
    km = StreamingKMeans(k=2).set_initial_centers([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0])
    assert km.latest_model().cluster_centers.tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert km.latest_model().cluster_weights.tolist() == [1.0, 1.0]


def streaming_kmeans_data(batches, num_points, k, d, r, seed):
    """PySpark's streamingKMeansDataGenerator."""
    rng = np.random.RandomState(seed)
    centers = [rng.randn(d) for _ in range(k)]
    data = [[centers[j % k] + r * rng.randn(d) for j in range(num_points)] for _ in range(batches)]
    return centers, data


def test_accuracy_for_single_center():
    centers, batches = streaming_kmeans_data(5, 5, k=1, d=5, r=0.1, seed=0)
    km = StreamingKMeans(k=1).set_initial_centers([[0.0] * 5], [0.0])
    models = train(km, batches)
    assert km.latest_model().cluster_weights.tolist() == [25.0]
    assert np.abs(km.latest_model().cluster_centers[0] - centers[0]).max() < 0.05
    expected = kmeans([[0.0] * 5], [0.0], [[p.tolist() for p in b] for b in batches])
    for model, (ref_centers, ref_weights) in zip(models, expected, strict=True):
        assert close(model.cluster_centers.tolist(), ref_centers)
        assert close(model.cluster_weights.tolist(), ref_weights)


def test_train_on_model():
    init = [[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]
    offsets = [[0, 0.1], [0, -0.1], [0.1, 0], [-0.1, 0]]
    batches = [[[o[0] + c[0], o[1] + c[1]] for c in init] for o in offsets]
    km = StreamingKMeans(k=4).set_initial_centers(init, [1.0] * 4)
    train(km, batches)
    assert km.latest_model().cluster_weights.tolist() == [5.0] * 4
    assert np.abs(km.latest_model().cluster_centers - np.array(init)).max() < 1e-15


async def test_predict_on_model():
    km = StreamingKMeans(k=4).set_initial_centers(
        [[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], [1.0] * 4
    )
    sink = ListSink()
    batches = [[[1.5, 1.5]], [[-1.5, 1.5]], [[-1.5, -1.5]], [[1.5, -1.5]]]
    await run_job(lambda points: km.predict_on(points).foreach_batch(sink), batches)
    assert [records for _, records in sink.batches] == [[0], [1], [2], [3]]


@pytest.mark.parametrize("predict_first", [True, False])
async def test_train_on_predict_on(predict_first):
    """PySpark's test (skipped there as flaky): batch 2 is predicted by the model
    trained on batch 1, whatever the registration order."""
    km = StreamingKMeans(k=2, decay_factor=0.0).set_initial_centers([[0.0], [1.0]], [1.0, 1.0])
    sink = ListSink()

    def build(points):
        if predict_first:
            km.predict_on(points).foreach_batch(sink)
        km.train_on(points)
        if not predict_first:
            km.predict_on(points).foreach_batch(sink)

    await run_job(build, [[[-0.5], [0.6], [0.8]], [[0.2], [-0.1], [0.3]]])
    assert [records for _, records in sink.batches] == [[0, 1, 1], [1, 0, 1]]


# -- predictions use the model before the batch's training ----------------------------

# With centers [0], [1] (weights 1), 0.4 is nearest 0; training on this batch moves
# center 0 to -1.53 and center 1 to 0.8, after which 0.4 would be nearest 1.
BATCH = [[0.4], [-5.0], [0.6]]


@pytest.mark.parametrize("order", ["train, predict", "predict, train"])
async def test_predictions_never_see_their_batch(order):
    km = StreamingKMeans(k=2).set_initial_centers([[0.0], [1.0]], [1.0, 1.0])
    plain, keyed = ListSink(), ListSink()

    def build(points):
        if order == "train, predict":
            km.train_on(points)
        km.predict_on(points).foreach_batch(plain)
        km.predict_on_values(points.map(lambda p: (p[0], p))).foreach_batch(keyed)
        if order == "predict, train":
            km.train_on(points)

    await run_job(build, [BATCH, BATCH])
    assert plain.batches[0] == (1.0, [0, 0, 1])
    assert keyed.batches[0] == (1.0, [(0.4, 0), (-5.0, 0), (0.6, 1)])
    assert plain.batches[1] == (2.0, [1, 0, 1])  # the model after batch 1


async def test_predictions_read_later_by_a_window_are_of_their_own_batch():
    km = StreamingKMeans(k=2).set_initial_centers([[0.0], [1.0]], [1.0, 1.0])
    sink = ListSink()

    def build(points):
        km.predict_on(points).window(2.0, 2.0).foreach_batch(sink)
        km.train_on(points)

    await run_job(build, [BATCH, BATCH])
    assert sink.batches == [(2.0, [0, 0, 1, 1, 0, 1])]


async def test_training_and_predictions_run_in_the_process_pool():
    _centers, batches = streaming_kmeans_data(3, 40, k=3, d=2, r=0.3, seed=4)
    lists = [[p.tolist() for p in batch] for batch in batches]
    km = StreamingKMeans(k=3, decay_factor=0.7).set_random_centers(dim=2, weight=0.0, seed=1)
    initial = km.latest_model()
    sink = ListSink()

    def build(points):
        km.train_on(points)
        km.predict_on(points).foreach_batch(sink)

    await run_job(build, lists, executor="process")
    history = kmeans(initial.cluster_centers.tolist(), [0.0] * 3, lists, 0.7)
    assert close(km.latest_model().cluster_centers.tolist(), history[-1][0])
    assert close(km.latest_model().cluster_weights.tolist(), history[-1][1])
    models = [initial.cluster_centers.tolist()] + [centers for centers, _ in history[:-1]]
    from ml_reference import nearest

    for (_, predicted), batch, model in zip(sink.batches, lists, models, strict=True):
        assert predicted == [nearest(model, p) for p in batch]


def test_the_estimator_pickles_with_its_model_and_goes_on_training():
    km = StreamingKMeans(k=2, decay_factor=0.5).set_initial_centers([[0.0], [1.0]], [1.0, 1.0])
    train(km, [BATCH])
    restored = pickle.loads(pickle.dumps(km))
    assert restored.latest_model().cluster_centers.tolist() == (
        km.latest_model().cluster_centers.tolist()
    )
    train(km, [[[2.0], [3.0]]])
    train(restored, [[[2.0], [3.0]]])
    assert restored.latest_model().cluster_weights.tolist() == (
        km.latest_model().cluster_weights.tolist()
    )


# -- against the per-point reference ------------------------------------------------

coordinate = st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0]) | st.floats(-10, 10)


@st.composite
def scenarios(draw):
    k = draw(st.integers(1, 4))
    dim = draw(st.integers(1, 3))
    vector = st.lists(coordinate, min_size=dim, max_size=dim)
    centers = draw(st.lists(vector, min_size=k, max_size=k))
    weights = draw(
        st.lists(st.sampled_from([0.0, 1.0, 2.5]) | st.floats(0, 100), min_size=k, max_size=k)
    )
    batches = draw(st.lists(st.lists(vector, max_size=12), min_size=1, max_size=5))
    decay = draw(st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1))
    unit = draw(st.sampled_from(["batches", "points"]))
    return centers, weights, batches, decay, unit


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_update_equals_the_per_point_reference(scenario):
    centers, weights, batches, decay, unit = scenario
    model = StreamingKMeansModel(centers, weights)
    for points, (ref_centers, ref_weights) in zip(
        batches, kmeans(centers, weights, batches, decay, unit), strict=True
    ):
        model = model.update(points, decay, unit)
        assert close(model.cluster_weights.tolist(), ref_weights)
        assert close(model.cluster_centers.tolist(), ref_centers)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_stream_equals_the_per_point_reference(scenario):
    centers, weights, batches, decay, unit = scenario
    km = StreamingKMeans(k=len(centers), decay_factor=decay, time_unit=unit)
    models = train(km.set_initial_centers(centers, weights), batches)
    for model, (ref_centers, ref_weights) in zip(
        models, kmeans(centers, weights, batches, decay, unit), strict=True
    ):
        assert close(model.cluster_centers.tolist(), ref_centers)
        assert close(model.cluster_weights.tolist(), ref_weights)


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StreamingKMeans(k=0), r"StreamingKMeans\(k\) must be a whole number >= 1"),
        (
            lambda: StreamingKMeans(2, decay_factor=1.5),
            r"decay_factor must be a finite number in \[0, 1\]",
        ),
        (lambda: StreamingKMeans(2, time_unit="seconds"), 'must be "batches" or "points"'),
        (lambda: StreamingKMeans(2).set_half_life(0, "batches"), "half_life"),
        (lambda: StreamingKMeans(2).set_half_life(2, "hours"), "set_half_life"),
        (lambda: StreamingKMeans(2).set_initial_centers([[0.0]], [1.0]), "1 centers given for k=2"),
        (
            lambda: StreamingKMeans(2).set_initial_centers([[0.0], [1.0, 2.0]], [1.0, 1.0]),
            "one length",
        ),
        (lambda: StreamingKMeans(1).set_initial_centers([[0.0]], [-1.0]), "finite numbers >= 0"),
        (lambda: StreamingKMeans(1).set_random_centers(0, 1.0, 1), "dim"),
    ],
)
def test_bad_settings_fail_where_they_are_written(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


async def test_the_graph_build_fails_without_centers_or_without_a_stream():
    from streamio import ManualClock, StreamingContext

    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        points = ssc.queue_stream([])
        for method in ("train_on", "predict_on", "predict_on_values"):
            with pytest.raises(ConfigurationError, match="set the initial centers first"):
                getattr(StreamingKMeans(k=2), method)(points)
        with pytest.raises(ConfigurationError, match="needs a DStream, not list"):
            StreamingKMeans(k=1).set_initial_centers([[0.0]], [1.0]).train_on([[0.0]])


async def test_a_vector_of_the_wrong_dimension_fails_its_batch_naming_train_on():
    km = StreamingKMeans(k=1).set_initial_centers([[0.0, 0.0]], [1.0])
    with pytest.raises(
        OperatorError, match=r"'train_on_\d+'.*expected vectors of 2 floats, got 3 values"
    ):
        await run_job(km.train_on, [[[1.0, 2.0], [1.0, 2.0, 3.0]]])
