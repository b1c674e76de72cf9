"""The OpenAI-compatible HTTP gateway: `/v1/chat/completions` and `/v1/models` translated onto RouterService over
gRPC (no routing of its own), and the browser chat page at `/`."""
