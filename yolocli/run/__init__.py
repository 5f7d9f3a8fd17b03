"""Running detection over many inputs: the pipeline, worker processes and stage timing."""
