"""3D question answering (3D-MoE's second task): benchmark readers (ScanQA, SQA3D), synthetic QA sets generated from
ground truth, metrics as the benchmarks define them, and the answering model that shares the planner's parts.
"""
