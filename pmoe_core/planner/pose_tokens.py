"""Pose sequences <-> the Pose-DiT's token grid.

At the API a pose is 7 numbers: position (m) + unit quaternion (x, y, z, w), as in `poses.Pose`; a plan is a
(steps, 2, 7) array, index 0 the pick and 1 the place pose. Inside the DiT a pose is 9 numbers: the position
mapped from the Ravens workspace box to [-1, 1] and the 6-D rotation of Zhou et al. (the first two columns of the
rotation matrix). The 6-D form is continuous (a quaternion has the q ~ -q double cover and unit-norm constraint,
Euler angles wrap), every coordinate lies in [-1, 1] like the standard-normal flow noise, and a sampled 6-D vector
is turned back into a rotation by Gram-Schmidt, so any network output decodes to a valid pose.
"""

from __future__ import annotations

import torch

from pmoe_core.tabletop.oracle import Step
from pmoe_core.tabletop.poses import Pose
from pmoe_core.tabletop.world import WORKSPACE

POSE_DIM = 7
TOKEN_DIM = 9

_LO = torch.tensor([r[0] for r in WORKSPACE])
_HI = torch.tensor([r[1] for r in WORKSPACE])


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) (x, y, z, w) quaternions (normalised first) -> (..., 3, 3) rotation matrices."""
    x, y, z, w = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) (x, y, z, w) unit quaternions, w >= 0 (vectorised Shepperd)."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4|q_i| for each component; the largest gives the best-conditioned formula
    big = 2 * torch.sqrt(
        torch.stack([1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1)
        .clamp_min(1e-12)
    )
    cand = torch.stack(
        [
            torch.stack([big[..., 0] ** 2 / 4, m01 + m10, m02 + m20, m21 - m12], -1) / big[..., 0:1],
            torch.stack([m01 + m10, big[..., 1] ** 2 / 4, m12 + m21, m02 - m20], -1) / big[..., 1:2],
            torch.stack([m02 + m20, m12 + m21, big[..., 2] ** 2 / 4, m10 - m01], -1) / big[..., 2:3],
            torch.stack([m21 - m12, m02 - m20, m10 - m01, big[..., 3] ** 2 / 4], -1) / big[..., 3:4],
        ],
        dim=-2,
    )  # (..., 4 candidates, 4)
    pick = big.argmax(-1)[..., None, None].expand(*big.shape[:-1], 1, 4)
    q = torch.gather(cand, -2, pick).squeeze(-2)
    q = q * torch.where(q[..., 3:] < 0, -1.0, 1.0)
    return q / q.norm(dim=-1, keepdim=True)


def rot6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """(..., 6) two column vectors -> (..., 3, 3) by Gram-Schmidt; columns are (a, b, a x b)."""
    a = torch.nn.functional.normalize(r6[..., :3], dim=-1)
    b = r6[..., 3:] - (a * r6[..., 3:]).sum(-1, keepdim=True) * a
    b = torch.nn.functional.normalize(b, dim=-1)
    return torch.stack([a, b, torch.cross(a, b, dim=-1)], dim=-1)


def yaw_to_rot6d(yaw: torch.Tensor) -> torch.Tensor:
    """(...,) yaws -> (..., 6) the 6-D form of the rotation about z (its first two matrix columns)."""
    cos, sin = yaw.cos(), yaw.sin()
    zero = torch.zeros_like(yaw)
    return torch.stack([cos, sin, zero, -sin, cos, zero], dim=-1)


def yaw_of_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """(..., 9) pose tokens of yaw-only rotations -> (...,) yaw: the angle of the rotation's first column."""
    return torch.atan2(tokens[..., 4], tokens[..., 3])


def positions_to_tokens(xyz: torch.Tensor) -> torch.Tensor:
    """(..., 3) metres -> the token's position coordinates: the Ravens workspace box mapped to [-1, 1]."""
    lo, hi = _LO.to(xyz), _HI.to(xyz)
    return 2 * (xyz - lo) / (hi - lo) - 1


def tokens_to_positions(tokens: torch.Tensor) -> torch.Tensor:
    """(..., 3) token position coordinates -> metres: the inverse of `positions_to_tokens`."""
    lo, hi = _LO.to(tokens), _HI.to(tokens)
    return (tokens + 1) / 2 * (hi - lo) + lo


def token_error_weights(position_unit: float) -> torch.Tensor:
    """(TOKEN_DIM,) squared-error weights that score a token's position in units of `position_unit` metres, the
    same along x, y and z, and its 6-D rotation as it is. The token axes map the workspace box to [-1, 1], so a
    token unit is 25 cm along x but 50 cm along y; scored in token units a 5 mm error costs 1e-4 to 4e-4, too little
    against the rotation's to pay for a pyramid's millimetres."""
    per_metre = 2 / (_HI - _LO)
    return torch.cat([(1 / (per_metre * position_unit)) ** 2, torch.ones(TOKEN_DIM - 3)])


def rotate_token_offsets(offset: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """(..., 3) token-space position offsets turned by `yaw` (...,) about z, in metres (the token axes are scaled
    differently, so the turn is made in metric units and mapped back)."""
    scale = (2 / (_HI - _LO)).to(offset)
    xy = offset[..., :2] / scale[:2]
    cos, sin = yaw.cos()[..., None], yaw.sin()[..., None]
    turned = torch.cat([cos * xy[..., :1] - sin * xy[..., 1:], sin * xy[..., :1] + cos * xy[..., 1:]], dim=-1)
    return torch.cat([turned * scale[:2], offset[..., 2:]], dim=-1)


def poses_to_tokens(poses: torch.Tensor) -> torch.Tensor:
    """(..., 7) position + quaternion -> (..., 9) normalised position + 6-D rotation."""
    m = quat_to_matrix(poses[..., 3:])
    return torch.cat([positions_to_tokens(poses[..., :3]), m[..., :, 0], m[..., :, 1]], dim=-1)


def tokens_to_poses(tokens: torch.Tensor) -> torch.Tensor:
    """(..., 9) -> (..., 7): the inverse of `poses_to_tokens` (exact on its image, a projection elsewhere)."""
    return torch.cat([tokens_to_positions(tokens[..., :3]), matrix_to_quat(rot6d_to_matrix(tokens[..., 3:]))], dim=-1)


def steps_to_tensor(sequences: list[list[Step]], max_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose sequences -> ((B, max_steps, 2, 7) padded float32, (B,) lengths); longer ones are an error."""
    out = torch.zeros(len(sequences), max_steps, 2, POSE_DIM)
    out[..., :3] = (_LO + _HI) / 2  # padding: workspace centre, identity rotation (finite, ignored by the losses)
    out[..., 6] = 1.0
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if len(sequences) and int(lengths.max()) > max_steps:
        raise ValueError(f"a sequence has {int(lengths.max())} steps, more than max_steps={max_steps}")
    for i, seq in enumerate(sequences):
        for j, step in enumerate(seq):
            for k, pose in enumerate((step.pick, step.place)):
                out[i, j, k] = torch.tensor([*pose.position, *pose.quaternion])
    return out, lengths


def tensor_to_steps(poses: torch.Tensor) -> list[Step]:
    """(S, 2, 7) -> S Steps."""
    rows = poses.detach().double().cpu().tolist()
    return [
        Step(Pose(tuple(pick[:3]), tuple(pick[3:])), Pose(tuple(place[:3]), tuple(place[3:]))) for pick, place in rows
    ]
