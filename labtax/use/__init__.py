"""Using a trained model: `labtax chat` (chat.py), `labtax export --format gguf|ollama` (gguf_export.py,
ollama.py), LoRA adapter folders (models.py) and where a model's system turn comes from (provenance.py).

Nothing here is imported by the training or generation stages; models.py reaches adapter.py lazily
so that every command that takes a model (eval, chat, export) also takes an adapter folder."""
