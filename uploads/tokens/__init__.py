"""Named API tokens: several per user, each revocable on its own, stored only as a digest.

A separate app (label `tokens`) so its table and migrations evolve apart from the uploads
app's. It is the only token system: keys DRF's `authtoken` once issued were turned into named
tokens ("migrated") by migrations/0002, which dropped DRF's plain-text table.
"""
