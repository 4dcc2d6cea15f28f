"""Receipts: composing delivery reports (pure) and delivering them (smarthost or Maildir)."""
