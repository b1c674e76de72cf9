"""The tiny random-weight Llama-architecture models that tests and benchmarks serve where speed matters."""
