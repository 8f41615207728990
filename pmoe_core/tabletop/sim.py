"""MuJoCo execution of pick/place steps with a suction gripper (physics only: no GL needed).

Gripper model, kept kinematic so it is deterministic and fast:
- pick: a ray straight down through the pick xy finds the first surface, as a descending suction cup would; if it
  belongs to a block, the block is attached with its offset from the cup (so an off-centre pick stays off-centre);
  anything else (table, bowl, zone, or an xy beside every block) is a miss and the step does nothing.
- place: the held block is carried to the place pose (xy and orientation; commanded z is ignored, as in Ravens),
  lowered until its bottom face would touch what lies below (rays from a grid on that face), released 1 mm above,
  and the world is stepped until every velocity is ~0 (or a step budget). Blocks placed badly slide or topple.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from pmoe_core.tabletop.mjcf import scene_mjcf
from pmoe_core.tabletop.oracle import Step
from pmoe_core.tabletop.poses import Pose, from_mj_quat, matrix_to_quat, quat_to_matrix, to_mj_quat
from pmoe_core.tabletop.world import SceneDesc

RAY_TOP = 1.0  # rays start this high (m): above anything on the table
RELEASE_GAP = 0.001
SETTLE_CHUNK = 25  # physics steps between velocity checks
SETTLE_BUDGET = 1500  # 3 s of simulated time per settle
VEL_TOL = 2e-3  # m/s and rad/s
STAND_STEPS = 100  # extra 0.2 s after the last step to see whether anything still moves
STAND_TOL = 0.001  # m


@dataclass
class Rollout:
    """What an executed sequence left behind: final object poses, which block each step picked (None = miss)."""

    poses: dict[int, Pose]
    picked: list[int | None] = field(default_factory=list)
    stable: bool = True
    physics_steps: int = 0


class Simulator:
    """One episode's MuJoCo world built from a scene description."""

    def __init__(self, desc: SceneDesc):
        self.desc = desc
        self.model = mujoco.MjModel.from_xml_string(scene_mjcf(desc))
        self.data = mujoco.MjData(self.model)
        self.body_object = np.full(self.model.nbody, -1, dtype=np.int64)
        self.body_of: dict[int, int] = {}
        for obj in desc.objects:
            body = self.model.body(f"obj{obj.id}").id
            self.body_object[body] = obj.id
            self.body_of[obj.id] = body
        self.blocks = {o.id for o in desc.blocks}
        self.held: tuple[int, np.ndarray, np.ndarray] | None = None  # object id, rotation and offset in the cup frame
        self.physics_steps = 0
        mujoco.mj_forward(self.model, self.data)

    # --- queries -------------------------------------------------------------------------------------------
    def ray_down(self, x: float, y: float, exclude_body: int = -1) -> tuple[float, int]:
        """Height of the first surface below (x, y) and the body it belongs to (0 = the table)."""
        geom = np.zeros(1, dtype=np.int32)
        dist = mujoco.mj_ray(
            self.model, self.data, np.array([x, y, RAY_TOP]), np.array([0.0, 0.0, -1.0]), None, True, exclude_body, geom
        )
        if dist < 0:
            return 0.0, 0
        return RAY_TOP - dist, int(self.model.geom_bodyid[geom[0]])

    def pose(self, object_id: int) -> Pose:
        body = self.body_of[object_id]
        return Pose(tuple(float(v) for v in self.data.xpos[body]), from_mj_quat(self.data.xquat[body]))

    def poses(self) -> dict[int, Pose]:
        return {o.id: self.pose(o.id) for o in self.desc.objects}

    # --- gripper -------------------------------------------------------------------------------------------
    def pick(self, pose: Pose) -> int | None:
        """Attach the block whose top surface is under the pick xy; None (and nothing held) on a miss."""
        x, y, _ = pose.position
        z, body = self.ray_down(x, y)
        object_id = int(self.body_object[body])
        if object_id not in self.blocks:
            self.held = None
            return None
        cup_r = quat_to_matrix(pose.quaternion)
        obj = self.pose(object_id)
        offset = cup_r.T @ (np.asarray(obj.position) - np.array([x, y, z]))
        self.held = (object_id, cup_r.T @ quat_to_matrix(obj.quaternion), offset)
        return object_id

    def place(self, pose: Pose) -> None:
        """Lower the held block at the place pose until contact, release it and let physics settle."""
        if self.held is None:
            return
        object_id, rel_r, offset = self.held
        self.held = None
        cup_r = quat_to_matrix(pose.quaternion)
        rot = cup_r @ rel_r
        centre = np.array([pose.position[0], pose.position[1], 0.0]) + cup_r @ offset
        centre[2] = 0.0
        clearance = self._clearance(object_id, centre, rot)
        centre[2] += RELEASE_GAP - clearance
        self._set_free_pose(object_id, centre, matrix_to_quat(rot))
        self.settle()

    def _clearance(self, object_id: int, centre: np.ndarray, rot: np.ndarray) -> float:
        """How far the block (centred at `centre`, rotation `rot`) is above what lies below its lowest face."""
        half = self.desc.object(object_id).size / 2
        down = int(np.argmax(np.abs(rot[2, :])))
        grid = np.linspace(-half, half, 5)
        u, v = np.meshgrid(grid, grid)
        local = np.zeros((u.size, 3))
        others = [k for k in range(3) if k != down]
        local[:, others[0]], local[:, others[1]] = u.ravel(), v.ravel()
        local[:, down] = -half * np.sign(rot[2, down])
        points = centre + local @ rot.T
        body = self.body_of[object_id]
        support = np.array([self.ray_down(px, py, exclude_body=body)[0] for px, py, _ in points])
        return float(np.min(points[:, 2] - support))

    def _set_free_pose(self, object_id: int, position: np.ndarray, quaternion) -> None:
        joint = self.model.body_jntadr[self.body_of[object_id]]
        qadr, vadr = self.model.jnt_qposadr[joint], self.model.jnt_dofadr[joint]
        self.data.qpos[qadr : qadr + 3] = position
        self.data.qpos[qadr + 3 : qadr + 7] = to_mj_quat(quaternion)
        self.data.qvel[vadr : vadr + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    # --- physics -------------------------------------------------------------------------------------------
    def settle(self, budget: int = SETTLE_BUDGET) -> bool:
        """Step until every velocity is ~0; False if still moving after `budget` steps."""
        for _ in range(0, budget, SETTLE_CHUNK):
            mujoco.mj_step(self.model, self.data, nstep=SETTLE_CHUNK)
            self.physics_steps += SETTLE_CHUNK
            if self.model.nv == 0 or np.abs(self.data.qvel).max() < VEL_TOL:
                return True
        return False

    def standing(self) -> bool:
        """Settled, and nothing moves more than 1 mm over another 0.2 s: the stacks are still standing."""
        if not self.settle():
            return False
        before = self.data.xpos.copy()
        mujoco.mj_step(self.model, self.data, nstep=STAND_STEPS)
        self.physics_steps += STAND_STEPS
        return bool(np.abs(self.data.xpos - before).max() < STAND_TOL)

    def execute(self, steps: list[Step], max_steps: int | None = None) -> Rollout:
        """Run at most `max_steps` (default: the scene's budget) steps, then check the world is at rest."""
        picked = []
        for step in steps[: self.desc.max_steps if max_steps is None else max_steps]:
            picked.append(self.pick(step.pick))
            self.place(step.place)
        stable = self.standing()
        return Rollout(self.poses(), picked, stable, self.physics_steps)


def execute(desc: SceneDesc, steps: list[Step], max_steps: int | None = None) -> Rollout:
    """Build the world of `desc` and run `steps` in it."""
    return Simulator(desc).execute(steps, max_steps)
