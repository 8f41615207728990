import numpy as np
import pytest

from pmoe_core.inspect.information import conditional_mutual_information, entropy_bits, information, mutual_information


def test_entropy_of_uniform_and_point_mass():
    assert entropy_bits(np.array([5, 5, 5, 5])) == pytest.approx(2.0)
    assert entropy_bits(np.array([0, 7, 0])) == 0.0


def test_independent_table_has_zero_mi_and_a_diagonal_has_full_mi():
    assert mutual_information(np.outer([1, 3], [2, 2, 4])) == pytest.approx(0.0, abs=1e-12)
    diag = np.diag([10, 10, 10, 10])
    info = information(diag)
    assert info.bits == pytest.approx(2.0) and info.normalized == pytest.approx(1.0) and info.points == 40


def test_matches_scikit_learn_on_random_labels():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 4000)
    e = (y + rng.integers(0, 3, 4000)) % 4  # depends on y, noisily
    table = np.zeros((5, 4), np.int64)
    np.add.at(table, (y, e), 1)
    info = information(table)
    assert info.bits == pytest.approx(metrics.mutual_info_score(y, e) / np.log(2), rel=1e-9)
    assert info.normalized == pytest.approx(metrics.normalized_mutual_info_score(y, e), rel=1e-9)


def test_a_single_category_is_not_measurable():
    assert information(np.array([[3, 4, 0]])) is None
    assert information(np.array([[3, 4], [0, 0]])) is None  # the second row never occurs


def test_conditional_mi_weights_each_table_by_its_points():
    a = np.diag([5, 5])  # 1 bit, 10 points
    b = np.outer([1, 1], [5, 5])  # 0 bits, 20 points
    assert conditional_mutual_information([a, b]) == pytest.approx(10 / 30)
    assert conditional_mutual_information([np.zeros((2, 2))]) is None
