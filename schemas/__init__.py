"""Wire and domain models (pydantic v2): what crosses the pipeline's edges and what it keeps."""
