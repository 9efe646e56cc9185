"""Data sets: raw files -> one prepared directory (one ``.npy`` per array + ``meta.json``)."""
