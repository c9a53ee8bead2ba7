"""Webhooks to apps: endpoints a person registers, the events that concern them delivered there,
signed (Standard Webhooks), retried with back-off, each attempt kept. Not the bank partner's
webhooks that Billfold receives: those are funding.webhooks."""
