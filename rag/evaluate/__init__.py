"""`rag eval`: retrieval quality on BEIR-layout data and on question sets with gold pages."""
