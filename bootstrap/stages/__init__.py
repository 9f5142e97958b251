"""One module per boot stage; ``bootstrap.pipeline`` gives their order."""
