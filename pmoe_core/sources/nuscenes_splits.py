"""The official nuScenes scene splits (nuscenes-devkit `utils/splits.py`), stored as runs of scene numbers.

trainval: 700 train + 150 val scenes; test: 150 scenes; mini: 8 train + 2 val. The mini scenes are drawn from
trainval (two mini-train scenes are trainval *val* scenes), so the lists depend on the version being read.
"""

from __future__ import annotations

_TRAIN_RUNS = (
    (1, 2), (4, 11), (19, 34), (41, 76), (120, 135), (138, 139), (149, 152), (154, 155), (157, 168), (170, 185),
    (187, 188), (190, 196), (199, 200), (202, 204), (206, 214), (218, 220), (222, 222), (224, 264), (283, 306),
    (315, 318), (321, 321), (323, 324), (328, 328), (347, 386), (388, 403), (405, 408), (410, 459), (461, 465),
    (467, 469), (471, 472), (474, 480), (499, 502), (504, 515), (517, 518), (525, 539), (541, 546), (566, 566),
    (568, 568), (570, 578), (580, 580), (582, 600), (639, 679), (681, 681), (683, 689), (695, 698), (700, 701),
    (703, 719), (726, 728), (730, 731), (733, 741), (744, 744), (746, 747), (749, 752), (757, 765), (767, 769),
    (786, 787), (789, 792), (803, 806), (808, 813), (815, 817), (819, 822), (847, 856), (858, 858), (860, 866),
    (868, 873), (875, 878), (880, 880), (882, 903), (945, 945), (947, 947), (949, 949), (952, 953), (955, 961),
    (975, 984), (988, 992), (994, 1025), (1044, 1058), (1074, 1102), (1104, 1110),
)
_VAL_RUNS = (
    (3, 3), (12, 18), (35, 36), (38, 39), (92, 110), (221, 221), (268, 278), (329, 332), (344, 346), (519, 524),
    (552, 565), (625, 627), (629, 630), (632, 638), (770, 771), (775, 775), (777, 778), (780, 784), (794, 800),
    (802, 802), (904, 917), (919, 931), (962, 963), (966, 969), (971, 972), (1059, 1073),
)
_TEST_RUNS = (
    (77, 91), (111, 119), (140, 140), (142, 148), (265, 266), (279, 282), (307, 314), (333, 343), (481, 498),
    (547, 551), (601, 604), (606, 624), (827, 831), (833, 842), (844, 846), (932, 933), (935, 943), (1026, 1043),
)
_MINI_TRAIN = (61, 553, 655, 757, 796, 1077, 1094, 1100)
_MINI_VAL = (103, 916)


def _names(runs) -> tuple[str, ...]:
    return tuple(f"scene-{n:04d}" for lo, hi in runs for n in range(lo, hi + 1))


TRAIN = _names(_TRAIN_RUNS)
VAL = _names(_VAL_RUNS)
TEST = _names(_TEST_RUNS)
MINI_TRAIN = _names((n, n) for n in _MINI_TRAIN)
MINI_VAL = _names((n, n) for n in _MINI_VAL)


def official_splits(version: str) -> dict[str, tuple[str, ...]]:
    """Split name -> scene names for a nuScenes version (v1.0-trainval, v1.0-test, v1.0-mini); {} if unknown."""
    if version.endswith("mini"):
        return {"train": MINI_TRAIN, "val": MINI_VAL}
    if version.endswith("trainval"):
        return {"train": TRAIN, "val": VAL}
    if version.endswith("test"):
        return {"test": TEST}
    return {}
