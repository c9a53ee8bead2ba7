"""What every context shares: database and Redis access, embedded servers, errors, logs."""
