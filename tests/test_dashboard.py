"""The TensorBoard a suite writes, read back from its event files: the dashboard layout names tags
that exist, figures only for per-instance policy runs, policy training and the bench's schedule chart,
one hparams schema, short run names, and the training run's deterministic-vs-sampled schedule views."""

import json
import re
from pathlib import Path

import pytest
from conftest import TINY
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2


def _runs(root: Path) -> dict[str, EventAccumulator]:
    out = {}
    for f in root.rglob("events.out.tfevents.*"):
        ea = EventAccumulator(str(f.parent), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
        ea.Reload()
        out[str(f.parent.relative_to(root))] = ea
    return out


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory, online_policy):
    from rltemp.experiments.bench import PairSpec, PolicySpec, Suite, run_suite

    out = tmp_path_factory.mktemp("dash")
    suite = Suite(name="dash", seeds=[0, 1], pairs=[PairSpec("seen", "envs/mnist1d.yaml", [*TINY, "distill.epochs=3"])],
                  methods=["fixed:4", "ls", f"policy:{online_policy}", "policy"],
                  # the fresh policy is run-level (its per-kind charts need one); the online policy has a modulator
                  policy=PolicySpec("agents/ppo.yaml", ["agent.episodes=6", "agent.episodes_per_rollout=2",
                                                        "agent.eval_every=0"]),
                  references=["fixed:4"])
    run_suite(suite, out, jobs=1, progress=False)
    return out


@pytest.mark.slow
def test_run_names_are_short_paths(suite_dir):
    names = set(_runs(suite_dir))
    assert {"seen/fixed_4/s0", "seen/ls/s1", "seen/policy/s0", "seen/policy-training", "dashboard"} <= names
    assert not [n for n in names if n.endswith("/tb") or re.search(r"_\d+$", n)]


@pytest.mark.slow
def test_dashboard_layout_names_tags_that_exist(suite_dir):
    runs = _runs(suite_dir)
    content = runs["dashboard"].PluginTagToContent("custom_scalars")
    layout = layout_pb2.Layout.FromString(runs["dashboard"].Tensors(next(iter(content)))[0].tensor_proto.string_val[0])
    tags = {t for ea in runs.values() for t in ea.Tags()["scalars"]}
    charts = [(c.title, c.multiline.tag) for cat in layout.category for c in cat.chart]
    assert len(charts) == 9
    for title, regexes in charts:
        assert any(re.search(r, t) for r in regexes for t in tags), f"no tag for chart {title!r}: {list(regexes)}"


@pytest.mark.slow
def test_figures_only_for_policy_runs_and_the_training_views(suite_dir):
    runs = _runs(suite_dir)
    with_images = {n for n, ea in runs.items() if ea.Tags()["images"]}
    # the online policy has a modulator (per-instance figures); the suite's fresh policy is schedule-only:
    # its schedule is the kd/temperature_mean scalar, no figure; the bench folder draws one chart of the
    # schedule chosen per pair
    modulated = {n for n in runs if n.startswith("seen/policy_")}
    assert with_images == modulated | {"dashboard"}, with_images  # (a training run draws every 10 episodes)
    assert runs["dashboard"].Tags()["images"] == ["policy/schedule_per_pair"]
    assert "kd/temperature_mean" in runs["seen/policy/s0"].Tags()["scalars"]
    training = runs["seen/policy-training"].Tags()
    assert {"train_schedule/T_first_epoch_deterministic", "train_schedule/T_first_epoch_sampled",
            "train_schedule/T_last_epoch_deterministic", "train_schedule/episode_return"} <= set(training["scalars"])
    transferred = next(n for n in runs if n.startswith("seen/policy_") and n.endswith("/s0"))  # policy:<folder>
    assert "decisions/temperature_vs_confidence_and_progress" in runs[transferred].Tags()["images"]
    # per-instance views only where the temperature varies per instance
    assert "kd/temperature_correct_mean" in runs["seen/ls/s0"].Tags()["scalars"]
    assert "kd/temperature_correct_mean" not in runs["seen/fixed_4/s0"].Tags()["scalars"]


@pytest.mark.slow
def test_one_hparams_schema_across_the_suite(suite_dir):
    schemas = set()
    for ea in _runs(suite_dir).values():
        try:
            content = ea.PluginTagToContent("hparams")
        except KeyError:  # a run without hparams (the dashboard layout, the training run)
            continue
        for blob in content.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(blob)
            if data.HasField("session_start_info"):
                schemas.add(tuple(sorted(data.session_start_info.hparams)))
    assert schemas == {("method", "pair", "seed", "student")}, schemas
    res = json.loads((suite_dir / "seen" / "fixed_4" / "s0" / "results.json").read_text())
    assert res["method"] == "fixed:4"


def test_a_per_instance_run_draws_its_decision_figure_at_the_first_middle_and_last_epoch():
    import matplotlib.pyplot as plt
    import torch

    from rltemp.kd.pipeline import EpochLogger
    from rltemp.kd.tblog import Decisions
    from rltemp.kd.trainer import EpochStats

    class Writer:  # records the steps of add_figure; every other TensorBoard call is accepted and dropped
        def __init__(self) -> None:
            self.figures: list[int] = []

        def add_figure(self, tag: str, fig, step: int) -> None:  # noqa: ANN001
            self.figures.append(step)
            plt.close(fig)

        def __getattr__(self, name: str):  # noqa: ANN204
            return lambda *a, **k: None

    g = torch.Generator().manual_seed(0)
    d = Decisions(1 + torch.rand(64, generator=g), torch.rand(64, generator=g), torch.rand(64, generator=g),
                  torch.rand(64, generator=g) > 0.5)
    for epochs, expected in ((7, [0, 3, 6]), (40, [0, 20, 39]), (1, [0])):
        w = Writer()
        log = EpochLogger(w, figures=True, t_range=(0.5, 2.0), epochs=epochs)
        for e in range(epochs):
            log(EpochStats(e, 1.0, 0.5, 1.0, 0.1, decisions=d), 1e-3, last=e == epochs - 1)
        assert w.figures == expected, (epochs, w.figures)
