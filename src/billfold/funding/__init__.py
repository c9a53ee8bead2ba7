"""Funding: bank accounts, ACH, cards, cash-out and bank webhooks."""
