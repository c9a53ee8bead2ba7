"""The demo (`billfold demo`, `make demo`): its users and their money (data), and the ordinary
past that lets the model judge them as established users (past). Nothing here runs in `serve`."""

from billfold.demo.data import DEMO_PASSWORD, banner, seed

__all__ = ["DEMO_PASSWORD", "banner", "seed"]
