"""README's "Machine learning on streams" examples run as written, on a manual clock."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import numpy as np
from ml_reference import kmeans, nearest, run_job
from river import datasets, evaluate, linear_model, metrics, preprocessing

from streamio.testing import ListSink

README = Path(__file__).resolve().parents[3] / "README.md"

# Spark's data/mllib/kmeans_data.txt and streaming_kmeans_data_test.txt
TRAINING = [
    "0.0 0.0 0.0",
    "0.1 0.1 0.1",
    "0.2 0.2 0.2",
    "9.0 9.0 9.0",
    "9.1 9.1 9.1",
    "9.2 9.2 9.2",
]
TESTING = ["(1.0), [1.7, 0.4, 0.9]", "(2.0), [2.2, 1.8, 0.0]"]


def example(defines: str) -> dict:
    """The namespace of the section's Python block that defines ``defines``."""
    text = README.read_text()
    section = text[text.index("## Machine learning on streams") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    (block,) = [b for b in blocks if f"def {defines}(" in b]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace


def test_the_pyspark_block_is_labelled_and_not_ours():
    text = README.read_text()
    assert "# PySpark\ntrainingData = sc.textFile" in text


async def test_streaming_kmeans_as_in_sparks_guide(capsys):
    clustering = example("clustering")["clustering"]
    models = []
    # the testing lines come one batch after the training, so they meet the trained model
    await run_job(
        lambda train, test: models.append(clustering(train, test)), [TRAINING], [[], TESTING]
    )
    initial = np.random.RandomState(0).randn(2, 3).tolist()
    points = [[float(x) for x in line.split()] for line in TRAINING]
    ((centers, weights),) = kmeans(initial, [1.0, 1.0], [points])
    model = models[0].latest_model()
    assert np.allclose(model.cluster_centers, centers, rtol=1e-12)
    assert model.cluster_weights.tolist() == weights
    printed = capsys.readouterr().out
    expected = [(1.0, nearest(centers, [1.7, 0.4, 0.9])), (2.0, nearest(centers, [2.2, 1.8, 0.0]))]
    assert (
        "Time: 1970-01-01 00:00:02\n-------------------------------------------\n"
        + "\n".join(map(str, expected))
        in printed
    )


async def test_river_models(capsys):
    namespace = example("classifier")
    data = list(datasets.Phishing())[:200]
    batches = [data[:100], data[100:]]
    models = []

    def build(labeled, unlabeled):
        models.append(namespace["classifier"](labeled, unlabeled.map(lambda e: e[0])))

    await run_job(build, batches, batches)
    reference = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x, y in data:
        reference.learn_one(x, y)
    x = data[0][0]
    assert models[0].predict_proba_one(x) == reference.predict_proba_one(x)
    assert "Time: 1970-01-01 00:00:02" in capsys.readouterr().out

    sink = ListSink()
    await run_job(lambda labeled: namespace["scored"](labeled).foreach_batch(sink), batches)
    fresh = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    expected = evaluate.progressive_val_score(data, fresh, metrics.Accuracy()).get()
    assert sink.batches[-1][1][0].get() == expected


async def test_pagerank_over_a_sliding_window_of_links():
    top_pages = example("top_pages")["top_pages"]
    links = [[("a", "b"), ("b", "c")], [("c", "a"), ("d", "a")], [("e", "a")], [("a", "e")]]
    sink = ListSink()
    from streamio import ManualClock, StreamingContext
    from streamio.testing import step

    async with StreamingContext(batch_interval=10.0, clock=ManualClock()) as ssc:
        top_pages(ssc.queue_stream(list(links))).foreach_batch(sink)
        ssc.start()
        await step(ssc, len(links))
    for time, ranks in sink.batches:
        index = round(time / 10.0)  # the window holds batches index-2 .. index
        window = [edge for batch in links[max(0, index - 3) : index] for edge in batch]
        expected = sorted(nx.pagerank(nx.DiGraph(window)).items(), key=lambda r: r[1], reverse=True)
        assert ranks == expected[:3]
    assert len(sink.batches) == 4
