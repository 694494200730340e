"""River models on streams: ``evaluate`` is River's progressive validation,
``predict`` never sees its batch's labels, frames go through ``learn_many``."""

from __future__ import annotations

import copy
import itertools

import pandas as pd
import pytest
from ml_reference import run_job
from river import datasets, evaluate, linear_model, metrics, preprocessing

from streamio import ConfigurationError, OperatorError
from streamio.testing import ListSink

PHISHING = list(datasets.Phishing())  # 1250 examples shipped with River


def in_batches(records, size):
    return [records[i : i + size] for i in range(0, len(records), size)]


def classifier():
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


@pytest.mark.parametrize("metric", [metrics.Accuracy, metrics.ROCAUC, metrics.LogLoss])
async def test_evaluate_equals_progressive_val_score(metric):
    model, score = classifier(), metric()
    sink = ListSink()
    await run_job(lambda s: s.evaluate(model, score).foreach_batch(sink), in_batches(PHISHING, 100))
    steps = evaluate.iter_progressive_val_score(PHISHING, classifier(), metric(), step=100)
    expected = [step[metric.__name__].get() for step in steps]  # read as each step comes
    assert [records[0].get() for _, records in sink.batches] == expected
    assert score.get() == evaluate.progressive_val_score(PHISHING, classifier(), metric()).get()


async def test_evaluate_of_a_regressor():
    data = list(itertools.islice(datasets.TrumpApproval(), 300))
    model, score = preprocessing.StandardScaler() | linear_model.LinearRegression(), metrics.MAE()
    sink = ListSink()
    await run_job(lambda s: s.evaluate(model, score).foreach_batch(sink), in_batches(data, 50))
    reference = preprocessing.StandardScaler() | linear_model.LinearRegression()
    assert score.get() == evaluate.progressive_val_score(data, reference, metrics.MAE()).get()
    assert len(sink.batches) == 6


class Mean:
    """An online model of one's own: the mean of the labels seen."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def learn_one(self, x, y):
        self.total, self.count = self.total + y, self.count + 1

    def predict_one(self, x):
        return self.total / self.count if self.count else None


class AbsoluteError:
    def __init__(self):
        self.errors = []

    def update(self, y_true, y_pred):
        self.errors.append(abs(y_true - y_pred))


async def test_evaluate_with_objects_of_ones_own():
    model, score = Mean(), AbsoluteError()
    sink = ListSink()
    batches = [[("a", 2.0), ("b", 4.0)], [], [("c", 9.0)]]
    await run_job(lambda s: s.evaluate(model, score).foreach_batch(sink), batches)
    # the first record has no prediction yet: not scored (as River does)
    assert score.errors == [2.0, 6.0]
    assert [records[0].errors for _, records in sink.batches] == [[2.0], [2.0], [2.0, 6.0]]


@pytest.mark.parametrize("order", ["learn, predict", "predict, learn", "evaluate, predict"])
async def test_predictions_use_the_model_before_the_batch(order):
    batches = in_batches(PHISHING[:300], 60)
    model = linear_model.LogisticRegression()
    sink = ListSink()

    def build(labeled):
        features = labeled.map(lambda example: example[0])
        if order == "learn, predict":
            labeled.learn(model)
        if order == "evaluate, predict":
            labeled.evaluate(model, metrics.Accuracy()).foreach_batch(lambda records: None)
        features.predict(model).foreach_batch(sink)
        if order == "predict, learn":
            labeled.learn(model)

    await run_job(build, batches)
    reference = linear_model.LogisticRegression()
    for (_, predicted), batch in zip(sink.batches, batches, strict=True):
        assert predicted == [(x, reference.predict_one(x)) for x, _ in batch]
        for x, y in batch:
            reference.learn_one(x, y)
    assert model.weights == reference.weights


async def test_frames_are_learnt_with_learn_many_and_predicted_with_predict_many():
    frames = [pd.DataFrame([x for x, _ in batch]) for batch in in_batches(PHISHING[:200], 50)]
    labels = [pd.Series([y for _, y in batch]) for batch in in_batches(PHISHING[:200], 50)]
    model = linear_model.LogisticRegression()
    sink = ListSink()

    def build(labeled):
        labeled.learn(model)
        labeled.map(lambda pair: pair[0]).predict(model).foreach_batch(sink)

    await run_job(build, [[pair] for pair in zip(frames, labels, strict=True)])
    reference = linear_model.LogisticRegression()
    for (_, [(frame, predicted)]), x, y in zip(sink.batches, frames, labels, strict=True):
        assert frame is x
        assert predicted.tolist() == reference.predict_many(x).tolist()
        reference.learn_many(x, y)
    assert model.weights == reference.weights


async def test_predictions_run_in_the_process_pool():
    model = linear_model.LogisticRegression()
    for x, y in PHISHING[:100]:
        model.learn_one(x, y)
    snapshot = copy.deepcopy(model)
    sink = ListSink()
    batches = in_batches([x for x, _ in PHISHING[100:300]], 100)
    await run_job(lambda s: s.predict(model).foreach_batch(sink), batches, executor="process")
    assert [p for _, records in sink.batches for _, p in records] == [
        snapshot.predict_one(x) for batch in batches for x in batch
    ]


# -- errors -----------------------------------------------------------------------------


async def test_models_and_metrics_are_checked_when_the_graph_is_built():
    async def build(job):
        await run_job(job, [[]])

    with pytest.raises(ConfigurationError, match=r"learn\(\) needs a model with learn_one\(\)"):
        await build(lambda s: s.learn(object()))
    with pytest.raises(ConfigurationError, match=r"learn\(\) calls its function with 2 argument"):
        await build(lambda s: s.learn(preprocessing.StandardScaler()))
    with pytest.raises(ConfigurationError, match=r"predict\(\) needs a model with predict_one"):
        await build(lambda s: s.predict(preprocessing.StandardScaler()))
    with pytest.raises(ConfigurationError, match="Accuracy does not work with the model"):
        await build(lambda s: s.evaluate(linear_model.LinearRegression(), metrics.Accuracy()))
    with pytest.raises(ConfigurationError, match="needs a metric with update"):
        await build(lambda s: s.evaluate(Mean(), "accuracy"))

    def predict_from_the_learning(s):
        model = Mean()
        s.evaluate(model, AbsoluteError()).predict(model)

    with pytest.raises(ConfigurationError, match="trains the same model"):
        await build(predict_from_the_learning)


async def test_a_record_that_is_no_pair_fails_its_batch_naming_learn():
    with pytest.raises(OperatorError, match=r"'learn_\d+'.*needs \(x, y\) records, got 3"):
        await run_job(lambda s: s.learn(Mean()), [[3]])
