"""Translation between syncd's domain objects and calendar formats; pure functions, no I/O."""
