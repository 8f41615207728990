"""The tabletop world the planner acts in (LoHoRavens-style), with no model code.

`world` (scene description), `tasks` (task families, instructions, goals), `oracle` (pick/place pose sequences),
`poses`, `mjcf` + `sim` (MuJoCo execution with a suction gripper), `observe` (camera point clouds), `metric`
(benchmark scoring), `episodes` (episode and benchmark loops), `scene_io` (PLY + JSON files).
The 3D-MoE model that plans in it lives in `pmoe_core.planner` and imports this package, never the reverse.
"""
