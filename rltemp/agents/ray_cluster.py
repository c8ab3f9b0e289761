"""General Ray helpers for policy training and bench suites: starting or joining a cluster, and
shipping the driver's teachers to the workers (through Ray's object store, into each node's
teacher cache; the datasets are generated on each worker)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from rltemp.errors import RltempError


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RltempError("--backend ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')") from None
    return ray


def start_ray(address: str | None, num_cpus: int | None) -> tuple[Any, bool]:
    """``ray.init`` (a local cluster with ``num_cpus`` CPUs, or the cluster at ``address``); returns
    the module and whether rltemp started it (and must shut it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
    return ray, True


def teacher_files(configs: list[Any]) -> dict[str, bytes]:
    """The cached teacher checkpoints these configs use (each trained or loaded once by the driver)."""
    from rltemp.kd.pipeline import get_teacher, prepare_data, teacher_cache_path, teacher_data

    files: dict[str, bytes] = {}
    seen: set[str] = set()
    for cfg in configs:
        key = json.dumps({"data": asdict(cfg.data), "teacher": asdict(cfg.teacher)}, sort_keys=True, default=str)
        if cfg.teacher.checkpoint or key in seen:
            continue
        seen.add(key)
        data, device = prepare_data(cfg)
        get_teacher(cfg, data, device, progress=False)
        path = teacher_cache_path(cfg, teacher_data(cfg, data, device))
        files[path.name] = path.read_bytes()
    return files


def install_teachers(teachers: dict[str, bytes]) -> None:
    """On a worker: put the driver's teacher checkpoints (:func:`teacher_files`) into this node's cache."""
    from rltemp.paths import atomic_write_bytes, cache_dir

    for name, data in teachers.items():
        path = cache_dir("teachers") / name
        if not path.exists():
            atomic_write_bytes(path, data)
