import numpy as np

from pmoe_core.inspect import consistency
from pmoe_core.inspect.consistency import disagreements, nearest_neighbours, pick_queries


def brute(coord, queries, k):
    d = ((coord[queries, None] - coord[None]) ** 2).sum(-1)
    d[np.arange(len(queries)), queries] = np.inf
    return np.sort(np.argsort(d, axis=1)[:, :k], axis=1)


def test_neighbours_exclude_the_query_and_match_brute_force():
    rng = np.random.default_rng(0)
    coord = rng.normal(size=(500, 3))
    queries = pick_queries(500, 120, rng)
    assert len(np.unique(queries)) == 120 and (np.diff(queries) > 0).all()
    found = nearest_neighbours(coord, queries, 8)
    assert found.shape == (120, 8) and not (found == queries[:, None]).any()
    np.testing.assert_array_equal(np.sort(found, axis=1), brute(coord, queries, 8))
    chunked = consistency._brute_force(coord, queries, 9)  # the no-scipy path, self included
    np.testing.assert_array_equal(np.sort(chunked[:, 1:], axis=1), brute(coord, queries, 8))


def test_tiny_scenes_use_fewer_neighbours():
    coord = np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0]])
    found = nearest_neighbours(coord, np.arange(3), 8)
    assert found.shape == (3, 2)
    assert nearest_neighbours(coord[:1], np.arange(1), 8).shape == (1, 0)


def test_disagreement_uses_the_neighbour_majority_with_ties_to_the_lowest_expert():
    top1 = np.array([0, 1, 1, 2, 2, 0])
    queries = np.array([0, 3])
    neighbours = np.array([[1, 2, 5],  # majority 1 != 0 -> disagree
                           [1, 4, 5]])  # 1, 2, 0 tie -> 0 != 2 -> disagree
    assert disagreements(top1, queries, neighbours, 3) == 2
    assert disagreements(top1, np.array([1]), np.array([[2, 2, 0]]), 3) == 0
