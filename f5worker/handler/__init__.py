"""Request handlers the worker's serve stage starts (``config.handler = "module:factory"``)."""
