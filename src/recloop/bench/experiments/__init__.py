"""The experiments wing: one module per bench cell mode, and the registry of modes."""
