"""What users asked, what they were told, and whether it helped (rag.questionlog.store), read
back as statistics and exported question sets (rag.questionlog.report)."""
