"""One module per boot stage; ``bootstrap.kernel.pipeline`` gives their order."""
