"""The real instruct models behind the mesh's model-quantization pairs: pinned sources, fetching, conversion."""
