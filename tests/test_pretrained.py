"""The shipped policy in agents/pretrained/ loads weights-only, is found by name, and still behaves as
it did when it was exported (its fingerprint run is re-derived: a stale file fails here)."""

import json
from pathlib import Path

import pytest

PRETRAINED = sorted(p.parent for p in Path("agents/pretrained").glob("*/policy.json"))


def test_one_policy_ships():
    assert [p.name for p in PRETRAINED] == ["default"]
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
    assert now["head_action"] == pytest.approx(then["head_action"], rel=1e-4)
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
    assert listed == [p.name for p in PRETRAINED] == ["default"]
