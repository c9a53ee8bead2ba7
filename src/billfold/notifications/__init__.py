"""Notifications: people told what happened to their money and their account, from the event
stream (the consumer group `notifications`), in an in-app feed and by email."""
