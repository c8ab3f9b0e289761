"""Export trained SB3 heads as one weights-only policy (format: :mod:`rltemp.kd.policy`).

``policy.pt`` is a plain state dict (``schedule.*``, ``modulator.*``; ``torch.load(...,
weights_only=True)``), ``policy.json`` says what the policy needs (feature sets, temperature
range, networks, algorithm, training, versions) and carries a behaviour *fingerprint*
(:func:`write_fingerprint`). SB3's own files are kept beside them for SB3 users
(``schedule.zip``, ``modulator.zip``); rltemp never reads them — SB3's loader unpickles.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from rltemp.kd.policy import FORMAT, actor_state_from_sb3, head_inputs, load_policy
from rltemp.paths import atomic_write_bytes

# A tiny, seconds-long run on which a policy's decisions are recorded when it is exported; a test
# re-runs it on the shipped policies, so a policy whose behaviour the code no longer reproduces
# (changed features, action mapping, training loop) is caught.
FINGERPRINT_RUN = {
    "config": "envs/mnist1d.yaml",
    "overrides": ["data.options.num_samples=600", "teacher.options.channels=8", "teacher.train.epochs=2",
                  "teacher.train.batch_size=32", "student.options.width=16", "distill.epochs=4",
                  "distill.batch_size=32", "device=cpu", "seed=0"],
}


def _head_state(model: Any, meta_head: dict[str, Any], prefix: str,
                obs_norm: tuple[Any, Any] | None = None) -> dict[str, torch.Tensor]:
    state = actor_state_from_sb3(model.policy.state_dict(), meta_head["algo"], len(meta_head["net_arch"]))
    # an asymmetric actor-critic's observation ends with critic-only columns, which its actor sees as
    # zeros (after any normalisation): dropping their first-layer weights leaves every action unchanged
    n = head_inputs(meta_head)
    state["net.0.weight"] = state["net.0.weight"][:, :n]
    if obs_norm is not None:  # trained on (x - mean) / std: W ((x - mean) / std) + b = (W / std) x + (b - W mean / std)
        mean, std = (torch.as_tensor(v, dtype=state["net.0.weight"].dtype)[:n] for v in obs_norm)
        w = state["net.0.weight"] / std
        state["net.0.bias"] = state["net.0.bias"] - w @ mean
        state["net.0.weight"] = w
    return {f"{prefix}.{k}": v.detach().cpu() for k, v in state.items()}


def export_policy(schedule_model: Any, modulator_model: Any, meta: dict[str, Any], out_dir: Path,
                  schedule_state: dict[str, torch.Tensor] | None = None,
                  schedule_obs_norm: tuple[Any, Any] | None = None) -> None:
    """Write ``policy.pt`` + ``policy.json`` (+ SB3 zips) into ``out_dir``. The schedule head comes
    from ``schedule_model`` or, when it was trained earlier, ``schedule_state`` (ActorNet keys);
    ``schedule_obs_norm``: the (mean, std) per observation column that ``schedule_model`` was
    trained on, folded into its first layer so that the exported head reads raw features."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if schedule_model is not None:
        state = _head_state(schedule_model, meta["schedule"], "schedule", schedule_obs_norm)
    else:
        state = {f"schedule.{k}": v.detach().cpu() for k, v in (schedule_state or {}).items()}
    if modulator_model is not None:
        state.update(_head_state(modulator_model, meta["modulator"], "modulator"))
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(out_dir / "policy.pt", buf.getvalue())
    atomic_write_bytes(out_dir / "policy.json", (json.dumps({"format": FORMAT, **meta}, indent=2) + "\n").encode())
    for name, model in (("schedule", schedule_model), ("modulator", modulator_model)):
        if model is not None:
            tmp = out_dir / f".tmp-{name}.zip"
            model.save(tmp)
            tmp.replace(out_dir / f"{name}.zip")
    load_policy(out_dir)  # what was written loads back, weights-only


def fingerprint(policy_dir: str | Path) -> dict[str, Any]:
    """The policy's decisions on :data:`FINGERPRINT_RUN`: the schedule temperature of every epoch
    and the mean / std of the per-instance temperatures, plus the run's last-epoch test accuracy."""
    from rltemp.config import load_config
    from rltemp.kd.pipeline import run_distill

    cfg = load_config(FINGERPRINT_RUN["config"], FINGERPRINT_RUN["overrides"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            res = run_distill(cfg.with_temperature(f"policy:{Path(policy_dir).resolve()}"), out=Path(tmp) / "run",
                              progress=False)
    finally:
        torch.set_num_threads(threads)
    return {**FINGERPRINT_RUN, "schedule": res["schedule"], "temperature": res["temperature"],
            "test_acc": res["test_acc"], "torch": torch.__version__}


def write_fingerprint(policy_dir: str | Path) -> dict[str, Any]:
    path = Path(policy_dir) / "policy.json"
    meta = json.loads(path.read_text())
    meta["fingerprint"] = fingerprint(policy_dir)
    atomic_write_bytes(path, (json.dumps(meta, indent=2) + "\n").encode())
    return meta["fingerprint"]
