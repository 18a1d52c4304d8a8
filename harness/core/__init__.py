"""Foundation of every layer: the user error, plugin registries, seeded randomness, device
choice and source-derived code versions. Imports nothing of the project (``versions``
names the modules whose sources it hashes and locates them with ``importlib``)."""
