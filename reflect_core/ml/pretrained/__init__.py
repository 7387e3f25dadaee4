"""Built-in models, shipped with the package: one folder per model (``model.json``, ``model.pt``,
``README.md``, the model card), written by ``scripts/train_pretrained.py`` and read-only at
runtime. List and locate them with ``reflect_core.ml.builtin``; nothing here is imported."""
