"""3D-MoE planner.

The tabletop world: `world` (scene description), `tasks` (task families, instructions, goals), `oracle` (pick/place
pose sequences), `mjcf` + `sim` (MuJoCo execution with a suction gripper), `observe` (camera point clouds),
`metric` (benchmark scoring), `episodes` (episode and benchmark loops), `scene_io` (PLY + JSON files).
"""
