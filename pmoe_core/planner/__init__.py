"""The 3D-MoE planner model: point encoder, language model, MoE, Pose-DiT, its training data, training and policy.

The world it acts in (tasks, scenes, simulation, scoring) is `pmoe_core.tabletop`.
"""
