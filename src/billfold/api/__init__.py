"""The thin HTTP layer: one router per context, the problem+json handlers and request middleware."""
