"""Events: the outbox every context writes in its own transaction (outbox.py), the relay that
publishes it to the broker (relay.py, brokers.py), and the command line that watches it."""
