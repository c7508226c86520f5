"""Journey writes: definitions, the trigger scan, the dispatcher."""
