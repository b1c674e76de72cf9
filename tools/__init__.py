"""Tools that are not services: the profiler, classifier training, the tiny model builder and `quantmesh up`.

They depend on `core`, the generated gRPC contracts and the public SDK, never on a service's private modules.
"""
