"""Named API tokens: several per user, each revocable on its own, stored only as a digest.

A separate app (label `tokens`) so its table and migrations evolve apart from the uploads
app's. DRF's own single `authtoken` keeps working beside it (`drf_create_token`).
"""
