"""`quantmesh up`: the whole mesh as local child processes, and the main job's sample and summary."""
