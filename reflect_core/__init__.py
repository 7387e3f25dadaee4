"""reflect_core: the library behind the app (no Streamlit), in wings by domain.

base ← physics ← formats ← data ← ml ← accounts ← uploads ← jobs ← store ← analysis ← viz ← cli:
a wing imports itself and the wings before it, never one after it (tests/test_architecture.py).
"""
