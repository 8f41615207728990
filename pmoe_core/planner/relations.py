"""What relates two places of a scene, as perception measures it: the features a learned relation is a function of.

Every condition position (object token, point-encoder token, table anchor) carries `ATTRIBUTE_DIM` measured numbers:
its centre in token space, its mean colour in CIELAB / 100, its extent (decimetres) and whether it is an object
proposal. `pair_features` turns two of them into the differences a relation is read from ("same colour" is a small
colour difference, "bigger" a positive extent difference, "inside" a small xy distance). What the planner does with
them is learned: the trunk turns them into attention biases, the pointer into a bias towards the object related to
the one its partner pointed at. Colour and extent differences are zero unless both positions are objects.
"""

from __future__ import annotations

import torch

ATTRIBUTE_DIM = 10  # centre (3), CIELAB / 100 (3), extent in dm (3), is an object (1)
RELATION_DIM = 12


def attributes(centres: torch.Tensor, lab: torch.Tensor, extents: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
    """(B, L, 3) token-space centres, CIELAB / 100, extents (m), (B, L) bool -> (B, L, ATTRIBUTE_DIM)."""
    obj = objects.to(centres.dtype)[..., None]
    return torch.cat([centres, lab * obj, extents * 10.0 * obj, obj], dim=-1)


def pair_features(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Attributes a (..., ATTRIBUTE_DIM) and b (broadcastable) -> (..., RELATION_DIM): b relative to a."""
    both = a[..., 9:10] * b[..., 9:10]
    d_pos = b[..., :3] - a[..., :3]
    d_lab = (b[..., 3:6] - a[..., 3:6]) * both
    d_ext = (b[..., 6:9] - a[..., 6:9]) * both
    return torch.cat([d_pos, d_pos[..., :2].norm(dim=-1, keepdim=True), d_lab, d_lab.norm(dim=-1, keepdim=True),
                      d_ext, both], dim=-1)


def pairwise(attrs: torch.Tensor) -> torch.Tensor:
    """(B, L, ATTRIBUTE_DIM) -> (B, L, L, RELATION_DIM): entry [i, j] is j relative to i."""
    return pair_features(attrs[:, :, None, :], attrs[:, None, :, :])
