"""BM25 beside Chroma: the analyser (English, Chinese, mixed) and the index derived from a collection."""
