"""Export a trained SB3 policy for weights-only transfer (see :mod:`rltemp.kd.policy` for the format).

``policy.pt`` is a plain state dict of the actor (``torch.load(..., weights_only=True)``),
``policy.json`` says what the policy needs (feature set, action mapping, temperature range, network
shape, algorithm, versions). The same JSON is also written into SB3's ``policy.zip`` as
``rltemp.json``, so the zip can be used for transfer too: only its ``policy.pth`` tensors are read,
weights-only; its pickled ``data`` entries are never loaded.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import torch

from rltemp.kd.policy import FORMAT, actor_state_from_sb3
from rltemp.paths import atomic_write_bytes


def export_policy(model: Any, meta: dict[str, Any], out_dir: Path) -> None:
    """Write ``policy.pt``, ``policy.json`` and ``policy.zip`` (SB3, with ``rltemp.json`` inside)."""
    state = actor_state_from_sb3(model.policy.state_dict(), meta["algo"], len(meta["net_arch"]))
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    atomic_write_bytes(out_dir / "policy.pt", buf.getvalue())
    text = json.dumps({"format": FORMAT, **meta}, indent=2) + "\n"
    atomic_write_bytes(out_dir / "policy.json", text.encode())
    tmp = out_dir / ".tmp-policy.zip"
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as z:
        z.writestr("rltemp.json", text)
    tmp.replace(out_dir / "policy.zip")


