"""Mesh arithmetic shared by the mesh-based indoor sources (ScanNet, Matterport3D), vectorised over faces."""

from __future__ import annotations

import numpy as np

from pmoe_core.errors import FormatError


def check_faces(faces: np.ndarray, num_vertices: int, source) -> np.ndarray:
    """Faces as int64 (F, 3), raising FormatError if an index points outside the vertex array."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        bad = int(np.flatnonzero((faces < 0).any(1) | (faces >= num_vertices).any(1))[0])
        raise FormatError(f"face {bad} refers to vertex {faces[bad].tolist()} but the mesh has {num_vertices} "
                          "vertices", source)
    return faces


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals: the sum of the (un-normalised, hence area-weighted) face normals at a vertex.

    Vertices used by no face (or only by degenerate faces) get a zero normal.
    """
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    corners = faces.ravel()
    out = np.empty_like(v)
    for axis in range(3):
        out[:, axis] = np.bincount(corners, weights=np.repeat(face_n[:, axis], 3), minlength=len(v))
    length = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, length, out=np.zeros_like(out), where=length > 0).astype(np.float32)


def majority_vertex_label(faces: np.ndarray, face_label: np.ndarray, num_vertices: int, num_classes: int,
                          ignore: int = -1) -> np.ndarray:
    """Per-vertex majority of the labels of the faces around it.

    `face_label` holds class indices in [0, num_classes) or `ignore`; an ignored face votes for "ignore", which
    loses every tie (ties otherwise go to the lower class index). Vertices on no face get `ignore`.
    """
    vote = np.where(face_label == ignore, num_classes, face_label).astype(np.int64)
    slots = num_classes + 1
    keys = faces.ravel() * slots + np.repeat(vote, 3)
    counts = np.bincount(keys, minlength=num_vertices * slots).reshape(num_vertices, slots)
    best = counts.argmax(axis=1)
    return np.where((best == num_classes) | (counts.sum(1) == 0), ignore, best).astype(np.int16)
