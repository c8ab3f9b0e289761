"""The shipped policies in agents/pretrained/ load weights-only, are found by name, and still behave as
they did when they were exported (their fingerprint run is re-derived: a stale file fails here)."""

import json
from pathlib import Path

import pytest

PRETRAINED = sorted(p.parent for p in Path("agents/pretrained").glob("*/policy.json"))


def test_the_default_and_probe_policies_ship():
    assert {"default", "probe"} <= {p.name for p in PRETRAINED}
    for d in PRETRAINED:
        assert {f.name for f in d.iterdir()} == {"policy.json", "policy.pt"}, d
        assert (d / "policy.pt").stat().st_size < 64_000  # a few KB, not a checkpoint


@pytest.mark.parametrize("policy_dir", PRETRAINED, ids=[p.name for p in PRETRAINED])
def test_pretrained_policy_loads_by_name_and_reproduces_its_fingerprint(policy_dir):
    from rltemp.agents.export import fingerprint
    from rltemp.kd.policy import load_policy

    meta = json.loads((policy_dir / "policy.json").read_text())
    policy = load_policy(policy_dir.name)  # policy:NAME finds it
    assert policy.meta == meta and "command" in meta["trained_on"]
    now, then = fingerprint(policy_dir), meta["fingerprint"]
    assert now["schedule"] == pytest.approx(then["schedule"], rel=1e-4)
    assert now["temperature"]["mean"] == pytest.approx(then["temperature"]["mean"], rel=1e-4)
    assert now["test_acc"] == pytest.approx(then["test_acc"], abs=0.01)


def test_unknown_policy_name_lists_the_shipped_ones():
    from rltemp.errors import RltempError
    from rltemp.kd.policy import load_policy

    with pytest.raises(RltempError, match=r"policy 'defualt' not found.*shipped policy \(default"):
        load_policy("defualt")


def test_rltemp_list_names_the_shipped_policies(capsys):
    from rltemp.cli import main

    assert main(["list"]) == 0
    listed = json.loads(capsys.readouterr().out)["shipped_policies"]
    assert listed == [p.name for p in PRETRAINED] and {"default", "probe"} <= set(listed)


def test_the_probe_policy_cools_slow_students_and_heats_fast_ones():
    """What the README says policy:probe does with a probe's reading (one epoch at T = 4): a slow
    student (a CNN 8/16 or 16/32 reads 0.01-0.02) gets T = 1 throughout; a fast one (MLP-256 reads
    0.08-0.12) starts hot and cools to about 1."""
    from rltemp.kd.controller import TemperatureController

    ctl = TemperatureController.load("probe")
    assert ctl.probe == {"epochs": 1.0, "temperature": 4.0}
    ctl.observe_probe(val_acc=0.015)
    assert [ctl.decide(p) for p in (0.0, 0.5, 1.0)] == pytest.approx([1.0, 1.0, 1.0], abs=0.05)
    ctl.observe_probe(val_acc=0.10)
    start, end = ctl.decide(0.0), ctl.decide(1.0)
    assert start > 4.0 and end < 1.2
