"""The profiler: measures each model-quantization pair on the user's hardware and eval set, and publishes profiles.

`python -m tools.profiler` (= `quantmesh profile`) drives running InferenceWorkers over gRPC. Pure modules
(`stats`, `scoring`, `eval_set`, `accuracy`, `derived`, `document`, `load_prompts`) hold the measurement logic and
are tested without servers; `driver`, `run`, `publish` do the gRPC I/O; `report` and `chart` present the results.
"""
