"""Where models come from: the registry, the verified local store and its downloads."""
