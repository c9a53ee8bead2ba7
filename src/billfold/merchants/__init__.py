"""Merchants: business profiles, their keys, QR codes, checkout sessions, payments, refunds."""
