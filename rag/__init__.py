"""rag-kb: knowledge-base Q&A (the library and service; the write side is `ingest`)."""
