"""Risk: fraud rules, velocity features, the learned model and its offline training."""
