"""Asynchronous batches: the router's BatchService (`servicer`) queues them in a Redis Stream (`store`), and batch
consumers (`consumer`, run as `python -m services.router.batch`) serve each request through the router."""
