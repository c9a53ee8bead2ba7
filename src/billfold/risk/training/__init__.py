"""The risk engine's offline half: the traffic generator (synth), training (train), evaluation
(evaluate) and the `billfold risk` commands that run them (cli).

The service never imports this package (tests/test_app.py checks): online, risk.model loads the
trained model and risk.serving computes the same features from PostgreSQL.
"""
