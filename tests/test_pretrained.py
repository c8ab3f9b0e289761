"""The shipped policies in agents/pretrained/ load weights-only, are found by name, and still behave as
they did when they were exported (their fingerprint run is re-derived: a stale file fails here)."""

import json
from pathlib import Path

import pytest

PRETRAINED = sorted(p.parent for p in Path("agents/pretrained").glob("*/policy.json"))


def test_the_default_policy_ships():
    assert Path("agents/pretrained/default/policy.json") in [p / "policy.json" for p in PRETRAINED]
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
