"""The classifier service: complexity tier, task intent, numeric-token share and token estimate of a query."""
