"""A trained planner as something that plans: load a checkpoint, plan from a cloud, act as a benchmark policy.

Loading builds the model from the checkpoint's config (the frozen LM it reads text with is loaded, not stored) and
loads only the trainable tensors (fp16 in the shipped default, cast back to float32). The shipped default lives in
`default/planner-default.pt`. A checkpoint of the design before issue #20 (a random tiny LLM, no trunk) is refused
in one line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.planner.model import DESIGN, PlannerConfig, ThreeDMoEPlanner
from pmoe_core.planner.scene_encoder import scene_points
from pmoe_core.scene import Scene
from pmoe_core.tabletop.observe import observe
from pmoe_core.tabletop.oracle import Step
from pmoe_core.tabletop.world import SceneDesc

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default" / "planner-default.pt"
DEFAULT_COMMAND = "pmoe plan train --out runs/planner-default --export pmoe_core/planner/default/planner-default.pt --overwrite"
OLD_DESIGN = ("the checkpoint is from an older planner design (before issue #20: random tiny LLM); "
              f"retrain with `{DEFAULT_COMMAND}`")


@dataclass
class LoadedPlanner:
    model: ThreeDMoEPlanner
    meta: dict
    path: Path
    load_s: float


def default_checkpoint() -> Path:
    if not DEFAULT_CHECKPOINT.is_file():
        raise MissingFile(f"the packaged default planner is missing; train one with `{DEFAULT_COMMAND}` "
                          "or pass --checkpoint", DEFAULT_CHECKPOINT)
    return DEFAULT_CHECKPOINT


def load_planner(path: str | Path | None = None) -> LoadedPlanner:
    """The planner in a checkpoint (None: the packaged default), in eval mode; bad files raise naming the path."""
    start = time.perf_counter()
    path = default_checkpoint() if path is None else Path(path)
    payload = load_checkpoint(path)
    meta = payload["meta"]
    if meta.get("kind") != "planner" or "model" not in payload or "config" not in meta:
        raise FormatError(f"not a planner checkpoint (kind {meta.get('kind')!r})", path)
    if meta.get("design") != DESIGN:
        raise FormatError(OLD_DESIGN, path)
    try:
        config = PlannerConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as err:
        raise FormatError(f"bad planner config: {err}", path) from None
    model = ThreeDMoEPlanner(config)
    try:
        model.load_trainable_state_dict({k: v.float() for k, v in payload["model"].items()})
    except (RuntimeError, ValueError, AttributeError) as err:
        raise FormatError(f"weights do not fit the config: {str(err).splitlines()[0]}", path) from None
    return LoadedPlanner(model.eval(), meta, path, time.perf_counter() - start)


@dataclass
class PlanTimings:
    """Seconds per stage of one plan call (load is the checkpoint + model build, paid once per process; `llm_s`
    is the language side: the frozen LM's states of the instruction (its first call also loads the LM) and the
    trunk, or the joint LLM)."""

    load_s: float
    encode_s: float
    llm_s: float
    dit_s: float

    @property
    def total_s(self) -> float:
        return self.load_s + self.encode_s + self.llm_s + self.dit_s


class _StageClock:
    """Forward hooks that time the encoder and the trunk inside one `plan` call."""

    def __init__(self, model: ThreeDMoEPlanner):
        self.spent = {"encoder": 0.0, "llm": 0.0}
        self._start: dict[str, float] = {}
        self._handles = []
        for name, module in (("encoder", model.encoder), ("llm", model.trunk)):
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(*_):
            self._start[name] = time.perf_counter()
        return hook

    def _post(self, name):
        def hook(*_):
            self.spent[name] += time.perf_counter() - self._start[name]
        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def cloud_input(scene: Scene, config: PlannerConfig, seed: int = 0, source: str | Path | None = None) -> torch.Tensor:
    """The encoder input of an observed cloud, sampled as the model was trained; a cloud without colours cannot be
    planned on."""
    if scene.color is None:
        raise BadInput("the point cloud has no colours (red, green, blue); the planner needs them", source)
    if len(scene.coord) == 0:
        raise BadInput("the point cloud is empty", source)
    return scene_points(scene.coord, scene.color, config.num_points, seed, config.encoder.objects)


def plan_cloud(
    planner: LoadedPlanner, points: torch.Tensor, instruction: str, euler_steps: int | None = None, seed: int = 0
) -> tuple[list[Step], PlanTimings]:
    """Plan on one (N, 6) encoder input; the flow noise is seeded, so a call is reproducible."""
    if not instruction.strip():
        raise BadInput("the instruction is empty")
    if euler_steps is not None and euler_steps < 1:
        raise BadInput(f"--euler-steps must be >= 1, got {euler_steps}")
    clock = _StageClock(planner.model)
    start = time.perf_counter()
    text_start = time.perf_counter()
    planner.model.text.encode([instruction])  # the frozen LM's states (cached per text)
    text_s = time.perf_counter() - text_start
    try:
        steps = planner.model.plan(points, instruction, euler_steps, torch.Generator().manual_seed(seed))
    finally:
        clock.close()
    total = time.perf_counter() - start
    enc, llm = clock.spent["encoder"], clock.spent["llm"] + text_s
    return steps, PlanTimings(planner.load_s, enc, llm, total - enc - llm)


class ModelPolicy:
    """Benchmark policy: observe the scene with the standard cameras and plan on it (seeded by the episode)."""

    def __init__(self, planner: LoadedPlanner, euler_steps: int | None = None):
        self.planner = planner
        self.euler_steps = euler_steps
        self.timings: list[PlanTimings] = []

    def __call__(self, desc: SceneDesc) -> list[Step]:
        cloud = observe(desc)
        points = cloud_input(cloud, self.planner.model.config, seed=desc.seed)
        steps, timings = plan_cloud(self.planner, points, desc.instruction, self.euler_steps, seed=desc.seed)
        self.timings.append(timings)
        return steps

    def mean_plan_s(self) -> float:
        return float(np.mean([t.total_s - t.load_s for t in self.timings])) if self.timings else 0.0


PLAN_FORMAT = "pmoe-plan"
PLAN_VERSION = 1


def plan_output(
    scene_path: str | Path,
    instruction: str,
    checkpoint: Path,
    euler_steps: int,
    seed: int,
    steps: list[Step],
    timings: PlanTimings,
    simulation: dict | None = None,
) -> dict:
    """The JSON `pmoe plan --json` writes (schema `plan_output`)."""
    out = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "scene": str(scene_path),
        "instruction": instruction,
        "checkpoint": str(checkpoint),
        "euler_steps": euler_steps,
        "seed": seed,
        "steps": [s.to_json() for s in steps],
        "timings": {"load_s": timings.load_s, "encode_s": timings.encode_s, "llm_s": timings.llm_s,
                    "dit_s": timings.dit_s, "total_s": timings.total_s},
    }
    if simulation is not None:
        out["simulation"] = simulation
    return out
